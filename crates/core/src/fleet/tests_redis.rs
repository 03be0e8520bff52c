//! The fleet circuit against real redis-server processes.
