#!/usr/bin/env node
'use strict';

// node scripts/module-cycles.js <crate src dir>...   (e.g. src, crates/core/src)
//
// Fails (exit 1) when the top-level modules of a Rust crate import each other in a cycle: a
// module that depends on one that depends back on it cannot be understood, changed or
// tested on its own, and the rule that keeps each crate one-way ("features never import a
// sibling; foundations at the bottom") needs a check, not a review comment.
//
// A dependency is a path naming another top-level module: `crate::x`, `use crate::{x, y::z}`,
// or `super::x` that resolves to the crate root. Comments and string literals do not count
// (a doc comment naming a module is no import), nor does test code: files declared under
// `#[cfg(test)]` (`#[cfg(test)] mod tests;`, with or without `#[path]`), and items carrying
// `#[cfg(test)]` inside other files. Only files reachable from lib.rs / main.rs are read.
// Prints each cycle with one file per edge; the last line per directory is the count.

const fs = require('node:fs');
const path = require('node:path');

// Comments, string and char literals blanked out (newlines and offsets kept), in one pass:
// a quote inside a comment, or `//` inside a string, must not start anything.
function strip(text) {
  let out = '';
  let i = 0;
  const blank = (to) => {
    out += text.slice(i, to).replace(/[^\n]/g, ' ');
    i = to;
  };
  while (i < text.length) {
    const rest = text.slice(i, i + 3);
    if (rest.startsWith('//')) {
      const nl = text.indexOf('\n', i);
      blank(nl === -1 ? text.length : nl);
    } else if (rest.startsWith('/*')) {
      let depth = 0;
      let j = i;
      for (; j < text.length; j++) {
        if (text.startsWith('/*', j)) {
          depth++;
          j++;
        } else if (text.startsWith('*/', j)) {
          j++;
          if (--depth === 0) break;
        }
      }
      blank(j + 1);
    } else if (/^b?r#*"/.test(text.slice(i, i + 40)) && !/\w/.test(text[i - 1] ?? '')) {
      const m = /^b?r(#*)"/.exec(text.slice(i, i + 40));
      const close = text.indexOf(`"${m[1]}`, i + m[0].length);
      blank(close === -1 ? text.length : close + 1 + m[1].length);
    } else if (text[i] === '"' || (rest.startsWith('b"') && !/\w/.test(text[i - 1] ?? ''))) {
      let j = text.indexOf('"', i) + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      blank(j + 1);
    } else if (text[i] === "'") {
      // A char literal ('x', '\n', '\u{..}'); otherwise a lifetime, kept.
      const m = /^'(?:\\u\{[0-9a-fA-F]+\}|\\.|[^\\'\n])'/.exec(text.slice(i, i + 12));
      if (m) blank(i + m[0].length);
      else {
        out += text[i];
        i++;
      }
    } else {
      out += text[i];
      i++;
    }
  }
  return out;
}

// The end (exclusive) of the item starting at `from`: its first `;` at depth 0, or the
// brace block it opens, whichever comes first.
function itemEnd(text, from) {
  let depth = 0;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (c === '(' || c === '[') depth++;
    else if (c === ')' || c === ']') depth--;
    else if (c === ';' && depth === 0) return i + 1;
    else if (c === '{') {
      let braces = 1;
      for (let j = i + 1; j < text.length; j++) {
        if (text[j] === '{') braces++;
        else if (text[j] === '}' && --braces === 0) return j + 1;
      }
      return text.length;
    }
  }
  return text.length;
}

// `#[cfg(test)]` items removed; the names of the file modules they declared returned.
function withoutTests(text) {
  const testMods = new Set();
  const attr = /#\[cfg\(test\)\]/g;
  let out = text;
  let m;
  while ((m = attr.exec(out)) !== null) {
    const end = itemEnd(out, m.index + m[0].length);
    const item = out.slice(m.index, end);
    const decl = /\bmod\s+(\w+)\s*;\s*$/.exec(item);
    if (decl) testMods.add(decl[1]);
    out = out.slice(0, m.index) + item.replace(/[^\n]/g, ' ') + out.slice(end);
  }
  return { text: out, testMods };
}

// The file modules `text` declares: [{ name, file }] (file: absolute path, or null if missing).
function declaredMods(text, file, isDirOwner) {
  const out = [];
  const re = /((?:#\[[^\]]*\]\s*)*)(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;/g;
  const dir = isDirOwner ? path.dirname(file) : path.join(path.dirname(file), path.basename(file, '.rs'));
  let m;
  while ((m = re.exec(text)) !== null) {
    const explicit = /#\[path\s*=\s*"([^"]+)"\]/.exec(m[1]);
    const candidates = explicit
      ? [path.join(path.dirname(file), explicit[1])]
      : [path.join(dir, `${m[2]}.rs`), path.join(dir, m[2], 'mod.rs')];
    out.push({ name: m[2], file: candidates.find((c) => fs.existsSync(c)) ?? null });
  }
  return out;
}

// Every non-test file of the crate rooted at `src`: [{ file, modPath: ['top', ...] }].
function crateFiles(src) {
  const root = ['lib.rs', 'main.rs'].map((f) => path.join(src, f)).find((f) => fs.existsSync(f));
  if (!root) throw new Error(`${src}: no lib.rs or main.rs`);
  const files = [];
  const visit = (file, modPath) => {
    // The raw text keeps #[path = "..."]; test items are found after comments are blanked.
    const raw = fs.readFileSync(file, 'utf8');
    const { text, testMods } = withoutTests(strip(raw));
    files.push({ file, modPath, text });
    const owner = modPath.length === 0 || path.basename(file) === 'mod.rs';
    const rawStripped = raw.replace(/\/\/[^\n]*/g, (c) => c.replace(/[^\n]/g, ' '));
    for (const d of declaredMods(rawStripped, file, owner)) {
      if (testMods.has(d.name) || d.file === null) continue;
      visit(d.file, [...modPath, d.name]);
    }
  };
  visit(root, []);
  return files;
}

// Top-level modules each file's paths name.
function references(text, modPath, tops) {
  const found = new Set();
  for (const m of text.matchAll(/\bcrate::(\w+)/g)) found.add(m[1]);
  // `use crate::{a, b::{c, d}, e as f}`: the first segment of each path at the group's top.
  for (const g of text.matchAll(/\buse\s+crate::\{/g)) {
    let body = text.slice(g.index + g[0].length - 1, itemEnd(text, g.index + g[0].length - 1));
    body = body.slice(1, body.lastIndexOf('}'));
    while (/\{[^{}]*\}/.test(body)) body = body.replace(/\{[^{}]*\}/g, '');
    for (const part of body.split(',')) {
      const first = /^\s*(\w+)/.exec(part);
      if (first) found.add(first[1]);
    }
  }
  // `super::super::x` from a/b/c.rs names crate::a::x: only a path out of the crate root counts.
  for (const m of text.matchAll(/\b((?:super::)+)(\w+)/g)) {
    const ups = m[1].length / 'super::'.length;
    if (ups === modPath.length) found.add(m[2]);
  }
  return [...found].filter((t) => tops.has(t));
}

function tarjan(nodes, edges) {
  const index = new Map();
  const low = new Map();
  const stack = [];
  const on = new Set();
  const comps = [];
  let i = 0;
  const sc = (v) => {
    index.set(v, i);
    low.set(v, i);
    i++;
    stack.push(v);
    on.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        sc(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
    }
    if (low.get(v) === index.get(v)) {
      const c = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1) comps.push(c.sort());
    }
  };
  for (const v of [...nodes].sort()) if (!index.has(v)) sc(v);
  return comps;
}

function check(src) {
  const files = crateFiles(src);
  const tops = new Set(files.filter((f) => f.modPath.length === 1).map((f) => f.modPath[0]));
  const edges = new Map();
  const why = new Map();
  for (const { file, modPath, text } of files) {
    if (modPath.length === 0) continue;
    const top = modPath[0];
    for (const t of references(text, modPath, tops)) {
      if (t === top) continue;
      if (!edges.has(top)) edges.set(top, new Set());
      edges.get(top).add(t);
      if (!why.has(`${top}>${t}`)) why.set(`${top}>${t}`, path.relative(src, file));
    }
  }
  const comps = tarjan(tops, edges);
  for (const c of comps) {
    const inner = c.flatMap((a) => [...(edges.get(a) ?? [])].filter((b) => c.includes(b)).sort().map((b) => `${a}->${b} (${why.get(`${a}>${b}`)})`));
    console.log(`cycle: ${c.join(', ')} :: ${inner.join('; ')}`);
  }
  const inCycles = comps.reduce((n, c) => n + c.length, 0);
  console.log(`module cycles in ${src}: ${comps.length} (${inCycles} modules in cycles, ${tops.size} modules)`);
  return comps.length;
}

function main() {
  const dirs = process.argv.slice(2);
  if (dirs.length === 0) {
    console.error('usage: node scripts/module-cycles.js <crate src dir>...');
    process.exit(2);
  }
  let cycles = 0;
  for (const d of dirs) cycles += check(d);
  process.exit(cycles ? 1 : 0);
}

if (require.main === module) main();

module.exports = { check, strip, withoutTests, references };
