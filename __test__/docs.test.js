'use strict';

// The docs stay navigable and true to the tree, without the addon: docs/design.md's module map
// names every top-level module of the core (crates/core/src), the binding (src) and the JS
// facade (index.js, lib/), and nothing that does not exist; every relative link of the
// README and docs/ points at a file that exists and, into Markdown, at a heading that does
// (GitHub's anchors); every alert rule has its runbook section; the README stays short.

const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const read = (rel) => fs.readFileSync(path.join(ROOT, rel), 'utf8');

// Markdown outside fenced code blocks, each fenced line blanked (line numbers kept).
function prose(md) {
  let fence = null;
  return md
    .split('\n')
    .map((line) => {
      const m = /^\s*(`{3,}|~{3,})/.exec(line);
      if (fence) {
        if (m && m[1][0] === fence[0] && m[1].length >= fence.length) fence = null;
        return '';
      }
      if (m) {
        fence = m[1];
        return '';
      }
      return line;
    })
    .join('\n');
}

// GitHub's heading anchor (github-slugger): the heading's text lower-cased, every character
// that is not a letter, mark, number, connector (`_`), space or hyphen dropped, spaces made
// hyphens. Link markup keeps its text, inline code its content.
function slug(heading) {
  const text = heading.replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1').trim();
  return text.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
}

// Every anchor a Markdown file offers: its headings' slugs (a repeated one gets -1, -2, ...)
// and explicit `<a id|name="...">` anchors.
function anchors(md) {
  const seen = new Map();
  const out = new Set();
  for (const line of prose(md).split('\n')) {
    const h = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (h) {
      const base = slug(h[1]);
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      out.add(n ? `${base}-${n}` : base);
    }
    for (const a of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) out.add(a[1]);
  }
  return out;
}

// Relative links of a Markdown file: [text](target) and ![alt](target), outside code.
function links(md) {
  const out = [];
  prose(md)
    .split('\n')
    .forEach((line, i) => {
      const text = line.replace(/`[^`]*`/g, '');
      for (const m of text.matchAll(/!?\[(?:[^\]]|\][^(])*?\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
        const target = m[1];
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:, ...
        out.push({ line: i + 1, target });
      }
    });
  return out;
}

// Problems with the relative links of one Markdown file (paths relative to ROOT).
function brokenLinks(file) {
  const problems = [];
  for (const { line, target } of links(read(file))) {
    const hash = target.indexOf('#');
    const pathPart = decodeURIComponent(hash < 0 ? target : target.slice(0, hash));
    const anchor = hash < 0 ? null : decodeURIComponent(target.slice(hash + 1));
    const dest = pathPart ? path.normalize(path.join(path.dirname(file), pathPart)) : file;
    const where = `${file}:${line}: ${target}`;
    if (dest.startsWith('..') || !fs.existsSync(path.join(ROOT, dest))) {
      problems.push(`${where}: no file ${dest}`);
      continue;
    }
    if (anchor !== null && dest.endsWith('.md') && !anchors(read(dest)).has(anchor)) {
      problems.push(`${where}: ${dest} has no heading with the anchor #${anchor}`);
    }
  }
  return problems;
}

// The module map: the first cell of each row between the markers of docs/design.md.
function mapPaths(design) {
  const a = design.indexOf('<!-- module-map:begin -->');
  const b = design.indexOf('<!-- module-map:end -->');
  if (a < 0 || b < a) throw new Error('docs/design.md lacks the module-map markers');
  const paths = [];
  for (const line of design.slice(a, b).split('\n')) {
    const m = /^\|\s*`([^`]+)`\s*\|/.exec(line);
    if (m) paths.push(m[1]);
  }
  return paths;
}

// What the map must name: each top-level module of a Rust crate (a .rs file other than lib.rs,
// or a directory), every lib/*.js, and index.js.
function requiredModules() {
  const out = ['index.js'];
  for (const dir of ['crates/core/src', 'src']) {
    for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      if (e.isDirectory()) out.push(`${dir}/${e.name}/`);
      else if (e.name.endsWith('.rs') && e.name !== 'lib.rs') out.push(`${dir}/${e.name}`);
    }
  }
  for (const f of fs.readdirSync(path.join(ROOT, 'lib'))) if (f.endsWith('.js')) out.push(`lib/${f}`);
  return out;
}

// Problems between a module map and the tree: rows naming nothing, modules without a row.
function mapProblems(paths, required) {
  const problems = [];
  const seen = new Set();
  for (const p of paths) {
    if (seen.has(p)) problems.push(`the map names ${p} twice`);
    seen.add(p);
    const full = path.join(ROOT, p);
    const exists = fs.existsSync(full) && fs.statSync(full).isDirectory() === p.endsWith('/');
    if (!exists) problems.push(`the map names ${p}, which does not exist${p.endsWith('/') ? ' as a directory' : ' as a file'}`);
  }
  for (const r of required) if (!seen.has(r)) problems.push(`${r} is missing from the module map`);
  return problems;
}

const DOCS = ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const OTHER_MD = ['monitoring/README.md', 'bench/README.md', 'loadtest/README.md'];

describe('the checker itself', () => {
  test("GitHub's slugs", () => {
    expect(slug('One call in flight: I/O on the JS thread')).toBe('one-call-in-flight-io-on-the-js-thread');
    expect(slug('Wrapping any function: `CircuitBreaker` (opossum 9 compatible)')).toBe('wrapping-any-function-circuitbreaker-opossum-9-compatible');
    expect(slug('Durable writes: the outbox')).toBe('durable-writes-the-outbox');
    expect(slug("In the service's prom-client exporter")).toBe('in-the-services-prom-client-exporter');
    expect(slug('See [the outbox](outbox.md) now')).toBe('see-the-outbox-now');
    expect([...anchors('# A\n## A\n```\n# not a heading\n```\n### B_c 2\n')]).toEqual(['a', 'a-1', 'b_c-2']);
  });

  test('links outside code, relative only', () => {
    const md = 'a [x](docs/a.md#b) `[no](c.md)` [web](https://x.y) ![i](img.png)\n```\n[no](d.md)\n```\n[e](#f)';
    expect(links(md).map((l) => l.target)).toEqual(['docs/a.md#b', 'img.png', '#f']);
  });

  test('a map row naming nothing and a module without a row are both reported', () => {
    const problems = mapProblems(['crates/core/src/error.rs', 'crates/core/src/no_such.rs', 'src/bridge'], ['crates/core/src/error.rs', 'src/fire.rs']);
    expect(problems).toEqual([
      'the map names crates/core/src/no_such.rs, which does not exist as a file',
      'the map names src/bridge, which does not exist as a file',
      'src/fire.rs is missing from the module map',
    ]);
  });
});

test("docs/design.md's module map matches the tree", () => {
  expect(mapProblems(mapPaths(read('docs/design.md')), requiredModules())).toEqual([]);
});

test.each([...DOCS, ...OTHER_MD])('%s: every relative link and anchor resolves', (file) => {
  expect(brokenLinks(file)).toEqual([]);
});

test('every alert rule has its runbook section in docs/operations.md', () => {
  const rules = [...read('monitoring/prometheus/alerts.yml').matchAll(/^\s*-\s*alert:\s*(\S+)/gm)].map((m) => m[1]);
  expect(rules.length).toBeGreaterThan(0);
  const have = anchors(read('docs/operations.md'));
  expect(rules.filter((r) => !have.has(slug(r)))).toEqual([]);
});

test('the README stays a front page (at most 500 lines; detail goes into docs/)', () => {
  expect(read('README.md').split('\n').length).toBeLessThanOrEqual(500);
});

test('the README keeps the two commands of the quick start', () => {
  const readme = read('README.md');
  expect(readme).toContain('npm ci && npm run demo');
  expect(readme).toMatch(/^npm test\b/m);
});
