//! Building a breaker: the composition root. The files the configuration names are read
//! (`files.rs`), the HTTP clients are built from the TLS material (and renewed when it
//! rotates), the features get their metric handles, and the outbox's delivery loop starts
//! (the fleet circuit's task starts with [`Breaker::start`], once the opener listens).
//! Features never build each other: everything that joins two of them happens here.

use super::*;
use crate::http::{build_clients, ClientSlot, Clients};
use crate::tls::{Material, ReloadReport, Renew, TlsMetrics};

/// The HTTP clients for `tls`'s upstream with this material.
fn http_clients(tls: &TlsConfig, base: Option<&url::Url>, m: &Material) -> Result<Clients, String> {
    let rustls = crate::tls::client_config(tls, m)?;
    build_clients(rustls, tls, base)
}

/// An HTTP client for `tls`'s upstream, its material read now (the message says what is
/// wrong with which file, never its content).
pub fn http_client(tls: &TlsConfig, base: Option<&url::Url>) -> Result<HttpClient, String> {
    let m = crate::tls::load(tls).map_err(|e| e.message)?;
    Ok(HttpClient::new(http_clients(tls, base, &m)?, tls, base))
}

/// Renews `http`'s clients whenever `tls`'s files rotate, until `stop` (`tls/reload.rs`).
pub fn watch_clients(
    rt: &tokio::runtime::Handle,
    http: &HttpClient,
    tls: &TlsConfig,
    base: Option<&url::Url>,
    metrics: TlsMetrics,
    stop: CancellationToken,
    report: Box<dyn Fn(ReloadReport) + Send + Sync>,
) {
    let target = Arc::new(RenewClients {
        slot: http.slot().clone(),
        tls: tls.clone(),
        base: base.cloned(),
    });
    crate::tls::spawn_reload(rt, tls.clone(), target, metrics, stop, report);
}

/// A TLS rotation renews the breaker's HTTP clients.
struct RenewClients {
    slot: ClientSlot,
    tls: TlsConfig,
    base: Option<url::Url>,
}

impl Renew for RenewClients {
    fn in_use(&self) -> bool {
        self.slot.is_shared()
    }

    fn renew(&self, m: Material) -> Result<(), String> {
        self.slot
            .swap(http_clients(&self.tls, self.base.as_ref(), &m)?);
        Ok(())
    }
}

impl Breaker {
    pub fn new(config: Config, mut deps: Deps) -> Result<Arc<Self>, CallError> {
        let started = Instant::now();
        let material = load_files(&config)?;
        if config.lkg.redis_url.is_some() {
            Self::redis_client(&config).map_err(|m| CallError::new(Code::Config, m))?;
        }
        let base = config.base_url.as_ref();
        let clients = http_clients(&config.tls, base, &material)
            .map_err(|m| CallError::new(Code::Config, m))?;
        let http = HttpClient::new(clients, &config.tls, base);
        // The clock's origin is taken when the breaker is assembled (`with_transport`): the
        // wall origin moves on by what building took (files, the TLS roots: tens of ms for
        // a process's first breaker), so `wall_ms` reads as other processes' clocks do (the
        // fleet circuit compares the replicas' timestamps).
        deps.wall_origin += started.elapsed();
        let b = Self::with_transport(config, deps, Transport::Http(http))?;
        b.metrics.tls.insecure.set(i64::from(b.config.tls.insecure));
        b.watch_tls();
        Ok(b)
    }

    /// Swaps in new TLS material when its files rotate (`tls/reload.rs`); each rotation is
    /// an event (logged by the facade) and counted (`dnastore_tls_reloads_total`).
    fn watch_tls(self: &Arc<Self>) {
        let rt = self
            .deps
            .runtime
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok());
        let (Some(rt), Transport::Http(http)) = (rt, &self.http) else {
            return;
        };
        let me = Arc::downgrade(self);
        watch_clients(
            &rt,
            http,
            &self.config.tls,
            self.config.base_url.as_ref(),
            self.metrics.tls.clone(),
            self.stop.clone(),
            Box::new(move |r| {
                if let Some(b) = me.upgrade() {
                    let (ok, reason) = match &r {
                        ReloadReport::Reloaded => (true, None),
                        ReloadReport::Failed(why) => (false, Some(why.as_str())),
                    };
                    b.emit(&Event::TlsReload { ok, reason });
                }
            }),
        );
    }

    pub(crate) fn with_transport(
        config: Config,
        deps: Deps,
        http: Transport,
    ) -> Result<Arc<Self>, CallError> {
        let durable = config.outbox.mode != OutboxMode::Off;
        let metrics = BreakerMetrics::new(&config.name, config.max_routes);
        let runtime = deps
            .runtime
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok());
        let outbox = if durable {
            let rt = runtime.as_ref().ok_or_else(|| {
                CallError::new(
                    Code::Config,
                    "the outbox needs a tokio runtime to deliver from",
                )
            })?;
            let ob = Outbox::open(
                &config.name,
                config.outbox.clone(),
                &config.lkg.tenant_header,
                config.lkg.signing_secret.clone(),
                metrics.outbox(),
            )
            .inspect_err(|_| metrics.remove())?;
            Some((ob, rt.clone()))
        } else {
            None
        };
        let lkg = LkgCache::new(config.lkg.clone(), metrics.lkg.clone());
        if config.fleet.is_some() && runtime.is_none() {
            metrics.remove();
            return Err(CallError::new(
                Code::Config,
                "the fleet circuit needs a tokio runtime to follow the fleet from",
            ));
        }
        let wall_origin_ms = deps
            .wall_origin
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let b = Arc::new_cyclic(|me: &Weak<Self>| Self {
            outbox: outbox.as_ref().map(|(o, _)| o.clone()),
            outbox_backoff: Backoff::new(config.retry.base, config.outbox.retry_max),
            redis: Self::shared_lkg(
                &config,
                lkg.is_some(),
                &metrics,
                me.clone(),
                runtime.clone(),
            ),
            circuit: Circuit::new(CircuitConfig::from(&config)).with_open_time(
                crate::circuit::OpenTime::from_config(&config, deps.rng.clone()),
            ),
            routes: config.circuit_per_route.then(|| {
                crate::circuit::RouteCircuits::new(
                    CircuitConfig::from(&config),
                    crate::circuit::OpenTime::from_config(&config, deps.rng.clone()),
                    config.max_routes,
                )
            }),
            fleet: Self::fleet_for(&config, me.clone(), deps.rng.clone(), &metrics),
            http,
            origin: Instant::now(),
            wall_origin_ms,
            stop: CancellationToken::new(),
            backoff: Backoff::new(config.retry.base, config.retry.max),
            budget: RetryBudget::new(config.retry.budget_percent, config.retry.min_per_sec),
            keys: KeyPolicy::new(&config.lkg),
            lkg,
            inflight: Mutex::new(HashMap::new()),
            limiter: config
                .limit
                .as_ref()
                .map(|l| Limiter::with_metrics(l, metrics.limit())),
            hedge: config
                .hedge
                .as_ref()
                .map(|h| Self::hedger(h, &config, &metrics)),
            observers: RwLock::new(vec![(0, metrics.events.clone() as Arc<dyn Observer>)]),
            next_observer: AtomicU64::new(1),
            forced_at_start: std::sync::atomic::AtomicBool::new(false),
            metrics,
            deps,
            config,
        });
        if let Some((ob, rt)) = &outbox {
            spawn_delivery(&b, ob, rt);
        }
        Ok(b)
    }

    /// The Redis side of the cache; its health transitions become events of this breaker.
    fn shared_lkg(
        config: &Config,
        local: bool,
        metrics: &BreakerMetrics,
        me: Weak<Self>,
        runtime: Option<tokio::runtime::Handle>,
    ) -> Option<RedisLkg> {
        let client = Self::redis_client(config).ok()?.filter(|_| local)?;
        let on_health = Box::new(move |up, reason: Option<&str>| {
            if let Some(b) = me.upgrade() {
                b.emit(&Event::RedisHealth { up, reason });
            }
        });
        Some(RedisLkg::new(
            client,
            &config.name,
            config.lkg.max_stale,
            metrics.lkg.clone(),
            on_health,
            runtime,
        ))
    }

    /// The client for `redisUrl` (None without one). Errors never hold credentials.
    pub(super) fn redis_client(config: &Config) -> Result<Option<RedisClient>, String> {
        let Some(url) = &config.lkg.redis_url else {
            return Ok(None);
        };
        let spec = RedisSpec::parse(url).map_err(|m| format!("invalid redisUrl: {m}"))?;
        RedisClient::new(spec, config.lkg.redis.clone())
            .map(Some)
            .map_err(|m| format!("invalid redisUrl: {m}"))
    }
}
