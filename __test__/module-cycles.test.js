'use strict';

// scripts/module-cycles.js, the CI check that the binding's and the core's top-level modules
// import each other one way only (npm test runs it on src and crates/core/src): each rule on
// a small crate written here, then the two real crates.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const SCRIPT = path.join(__dirname, '..', 'scripts', 'module-cycles.js');

let dir;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'module-cycles-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function crate(files) {
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
}

function run() {
  try {
    return { code: 0, out: execFileSync(process.execPath, [SCRIPT, dir], { encoding: 'utf8' }) };
  } catch (e) {
    return { code: e.status, out: e.stdout };
  }
}

test('a cycle through a use group, a path and super:: fails and names every edge', () => {
  crate({
    'lib.rs': 'mod a;\nmod b;\nmod c;\n',
    'a.rs': 'use crate::{b::{X, Y}, c as see};\n',
    'b/mod.rs': 'mod inner;\n',
    'b/inner.rs': 'fn f() { super::super::c::g(); }\n',
    'c.rs': 'pub fn g() { crate::a::h() }\n',
  });
  const { code, out } = run();
  expect(code).toBe(1);
  expect(out).toContain('cycle: a, b, c :: a->b (a.rs); a->c (a.rs); b->c (b/inner.rs); c->a (c.rs)');
  expect(out).toContain('1 (3 modules in cycles, 3 modules)');
});

test('comments, strings, test modules and cfg(test) items are not imports', () => {
  crate({
    'lib.rs': 'mod a;\nmod b;\n#[cfg(test)]\nmod test_support;\n',
    'a.rs': 'use crate::b::Thing;\n',
    'b.rs': [
      '// crate::a is mentioned here\n/* and crate::a here, /* nested */ crate::a */\n',
      'const S: &str = "crate::a"; const R: &str = r#"crate::a "quoted""#; const C: char = \'"\';\n',
      'fn f<\'x>(v: &\'x str) {}\n',
      '#[cfg(test)]\nuse crate::a::Other;\n',
      '#[cfg(test)]\nmod tests {\n    use crate::a::X;\n    fn t() { let s = "{"; crate::a::y(); }\n}\n',
      '#[cfg(test)]\n#[path = "b_tests.rs"]\nmod more;\n',
    ].join(''),
    'b_tests.rs': 'use crate::a::Z;\n',
    'test_support.rs': 'use crate::a::W;\nuse crate::b::V;\n',
  });
  const { code, out } = run();
  expect(code).toBe(0);
  expect(out).toContain('module cycles in');
  expect(out).toContain(': 0 (0 modules in cycles, 2 modules)');
});

test('one-way imports pass, and a real import after the tests still counts', () => {
  crate({
    'lib.rs': 'mod a;\nmod b;\n',
    'a.rs': 'use crate::b::Thing;\n',
    'b.rs': '#[cfg(test)]\nmod tests {\n    fn t() {}\n}\n',
  });
  expect(run().code).toBe(0);
  fs.appendFileSync(path.join(dir, 'b.rs'), 'fn late() { crate::a::x() }\n');
  const { code, out } = run();
  expect(code).toBe(1);
  expect(out).toContain('cycle: a, b :: a->b (a.rs); b->a (b.rs)');
});

test('the binding and the core have no cycle between their top-level modules', () => {
  const root = path.join(__dirname, '..');
  const out = execFileSync(process.execPath, [SCRIPT, path.join(root, 'src'), path.join(root, 'crates', 'core', 'src')], {
    encoding: 'utf8',
  });
  expect(out.match(/: 0 \(0 modules in cycles/g)).toHaveLength(2);
});
