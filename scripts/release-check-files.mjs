// Part of `npm run release:check` (scripts/release-check.sh): checks the files `npm publish`
// would upload, unpacked from the tarball into PKG_DIR, against the file list of
// `npm publish --dry-run --json` (PUBLISH_JSON), and the repository's Markdown links.
//
//   node scripts/release-check-files.mjs PKG_DIR PUBLISH_JSON REPO_ROOT
//       the whole check of the tarball (its README's included)
//   node scripts/release-check-files.mjs --readme PKG_DIR REPO_ROOT
//       only its README.md (scripts/pack-smoke.sh): the package README, links and images whole
//   node scripts/release-check-files.mjs --docs REPO_ROOT
//       every relative link and image of the repository's Markdown files resolves, anchors included
//
// Prints one `  ok   - …` / `  FAIL - …` / `  note - …` line per check; exits 1 on a FAIL.
// Parses JavaScript and declarations with the TypeScript compiler's parser (a devDependency).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join, normalize, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

const [pkgDir, publishJson, repoRoot] = process.argv.slice(2);
let failures = 0;
const ok = (what) => console.log(`  ok   - ${what}`);
const fail = (what, details = []) => {
  failures++;
  console.log(`  FAIL - ${what}`);
  for (const d of details.slice(0, 20)) console.log(`      | ${d}`);
  if (details.length > 20) console.log(`      | … and ${details.length - 20} more`);
};
const check = (good, what, details) => (good ? ok(what) : fail(what, details));
const note = (what) => console.log(`  note - ${what}`);

// ---- Markdown: links, images and headings, as GitHub renders them
/** Text outside fenced code blocks and inline code spans, where links mean something. */
function proseOf(markdown) {
  return markdown
    .replace(/^( {0,3})(```|~~~)[^\n]*\n[\s\S]*?^\1\2[^\n]*$/gm, '')
    .replace(/(`+)[\s\S]*?\1/g, (span) => (span.includes('\n\n') ? span : ''));
}
/** Every link and image target: `[t](url)`, `![a](url)`, `[t]: url`, `<img src>`, `<a href>`. */
function linksOf(markdown) {
  const prose = proseOf(markdown);
  const found = [];
  for (const m of prose.matchAll(/(!?)\[(?:[^[\]]|\[[^\]]*\])*\]\(\s*<?([^\s)>]+)>?(?:\s+"[^"]*")?\s*\)/g))
    found.push({ image: m[1] === '!', url: m[2] });
  for (const m of prose.matchAll(/^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)) found.push({ image: false, url: m[1] });
  for (const m of prose.matchAll(/<img\b[^>]*\bsrc\s*=\s*["']([^"']+)["']/gi)) found.push({ image: true, url: m[1] });
  for (const m of prose.matchAll(/<a\b[^>]*\bhref\s*=\s*["']([^"']+)["']/gi)) found.push({ image: false, url: m[1] });
  return found;
}
const isExternal = (url) => /^[a-z][a-z0-9+.-]*:/i.test(url) || url.startsWith('//');
/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes, repeats numbered. */
function anchorsOf(markdown) {
  const anchors = new Set();
  const seen = new Map();
  const text = markdown.replace(/^( {0,3})(```|~~~)[^\n]*\n[\s\S]*?^\1\2[^\n]*$/gm, '');
  for (const m of text.matchAll(/^ {0,3}#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const plain = m[1].replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/<[^>]+>/g, '');
    const base = plain
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const m of text.matchAll(/<a\s+(?:name|id)\s*=\s*["']([^"']+)["']/gi)) anchors.add(m[1]);
  return anchors;
}
/**
 * Problems of one Markdown file's relative links: `resolveTarget(url)` says where a path points
 * (`{ file }`, or `{ problem }`); anchors are checked in the Markdown file they name.
 */
function linkProblems(markdown, resolveTarget) {
  const problems = [];
  for (const { image, url } of linksOf(markdown)) {
    if (isExternal(url)) continue;
    const [rawPath, anchor] = url.split('#', 2);
    let path;
    try {
      path = decodeURIComponent(rawPath.split('?')[0]);
    } catch {
      problems.push(`${url}: not a valid URL`);
      continue;
    }
    let target = { file: undefined, text: markdown };
    if (path !== '') {
      target = resolveTarget(path, image);
      if (target.problem) {
        problems.push(`${image ? 'image' : 'link'} ${url}: ${target.problem}`);
        continue;
      }
    }
    if (anchor && (path === '' || path.endsWith('.md'))) {
      const text = target.text ?? readFileSync(target.file, 'utf8');
      if (!anchorsOf(text).has(anchor.toLowerCase())) problems.push(`link ${url}: no heading #${anchor} there`);
    }
  }
  return problems;
}

/** The tarball's README.md: the committed package README, its links and images whole. */
function checkPackageReadme(pkgDir, repoRoot, fileSet) {
  const shipped = join(pkgDir, 'README.md');
  const source = join(repoRoot, 'libs', 'telemetry', 'README.md');
  if (!existsSync(shipped)) {
    fail('the tarball has a README.md');
    return;
  }
  const text = readFileSync(shipped, 'utf8');
  const marker = '## Quick start';
  check(
    existsSync(source) && text === readFileSync(source, 'utf8') && text.split('\n').includes(marker),
    `its README.md is libs/telemetry/README.md, the package README (heading "${marker}"), not the repository's`,
  );
  // A link may point into the tarball, or (links only) to a document of the repository, which
  // GitHub resolves from libs/telemetry/; an image must be shipped, or npm would show it broken.
  const libDir = join(repoRoot, 'libs', 'telemetry');
  const links = linksOf(text).filter((l) => !isExternal(l.url));
  const problems = linkProblems(text, (path, image) => {
    const inPackage = normalize(path).split(sep).join('/');
    if (!inPackage.startsWith('../') && fileSet.has(inPackage.replace(/^\.\//, ''))) return { file: join(pkgDir, inPackage) };
    if (image) return { problem: 'an image that is not in the tarball (npm would show it broken)' };
    const inRepo = resolve(libDir, path);
    const rel = relative(repoRoot, inRepo);
    if (rel.startsWith('..') || !/^(docs\/.+\.md|[^/]+\.md)$/.test(rel.split(sep).join('/'))) {
      return { problem: 'neither a file of the tarball nor a Markdown document of the repository (docs/*.md or a top-level .md)' };
    }
    if (!existsSync(inRepo) || !statSync(inRepo).isFile()) return { problem: `${rel} does not exist in the repository` };
    return { file: inRepo };
  });
  check(
    problems.length === 0,
    `its ${links.length} relative links and images point into the tarball or, links only, to the repository's docs (none broken, no picture missing)`,
    problems,
  );
}

/** Every relative link and image of the repository's own Markdown (README.md, CHANGELOG.md, docs/, libs/telemetry/README.md). */
function checkRepositoryDocs(repoRoot) {
  const files = ['README.md', 'CHANGELOG.md', 'libs/telemetry/README.md'];
  const docs = join(repoRoot, 'docs');
  if (existsSync(docs)) {
    for (const f of readdirSync(docs, { recursive: true })) if (String(f).endsWith('.md')) files.push(join('docs', String(f)));
  }
  const present = files.filter((f) => existsSync(join(repoRoot, f)));
  const problems = [];
  let count = 0;
  for (const file of present) {
    const text = readFileSync(join(repoRoot, file), 'utf8');
    count += linksOf(text).filter((l) => !isExternal(l.url)).length;
    const found = linkProblems(text, (path) => {
      const target = resolve(repoRoot, dirname(file), path);
      if (relative(repoRoot, target).startsWith('..')) return { problem: 'outside the repository' };
      if (!existsSync(target)) return { problem: `${relative(repoRoot, target)} does not exist` };
      return statSync(target).isFile() ? { file: target } : { file: undefined, text: '' };
    });
    problems.push(...found.map((p) => `${file}: ${p}`));
  }
  check(
    problems.length === 0,
    `the ${count} relative links and images of ${present.length} Markdown files resolve, anchors included`,
    problems,
  );

  // The reference pages name the whole public surface: every export, every option.
  const src = join(repoRoot, 'libs', 'telemetry', 'src');
  const parse = (file) => ts.createSourceFile(file, readFileSync(join(src, file), 'utf8'), ts.ScriptTarget.ESNext, true);
  const exported = [];
  ts.forEachChild(parse('index.ts'), (node) => {
    if (ts.isExportDeclaration(node) && node.exportClause && ts.isNamedExports(node.exportClause)) {
      for (const el of node.exportClause.elements) exported.push(el.name.text);
    }
  });
  const options = [];
  const visit = (node) => {
    if (ts.isInterfaceDeclaration(node) && ['TelemetryModuleOptions', 'TelemetryModuleExtras'].includes(node.name.text)) {
      for (const m of node.members) if (m.name && ts.isIdentifier(m.name)) options.push(m.name.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(parse('telemetry.options.ts'));
  visit(parse('telemetry.module-definition.ts'));
  const named = (doc, names) => {
    const path = join(repoRoot, 'docs', doc);
    const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
    return names.filter((n) => !new RegExp('`' + n + '[`(]').test(text));
  };
  const unnamedExports = named('api.md', exported);
  check(
    exported.length > 0 && unnamedExports.length === 0,
    `docs/api.md names each of the ${exported.length} exports of libs/telemetry/src/index.ts`,
    unnamedExports,
  );
  const unnamedOptions = named('configuration.md', options);
  check(
    options.length > 0 && unnamedOptions.length === 0,
    `docs/configuration.md names each of the ${options.length} options of TelemetryModuleOptions (and isGlobal)`,
    unnamedOptions,
  );
}

if (process.argv[2] === '--readme' || process.argv[2] === '--docs') {
  const [mode, a, b] = process.argv.slice(2);
  if (mode === '--readme') {
    const files = readdirSync(a, { recursive: true }).map((f) => String(f).split(sep).join('/'));
    checkPackageReadme(a, b, new Set(files.filter((f) => statSync(join(a, f)).isFile())));
  } else {
    checkRepositoryDocs(a);
  }
  process.exit(failures === 0 ? 0 : 1);
}

// ---- the file list npm publish would upload
const published = Object.values(JSON.parse(readFileSync(publishJson, 'utf8')))[0];
const files = published.files.map((f) => f.path).sort();
const fileSet = new Set(files);
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
console.log(
  `   ${published.id}: ${files.length} files, ${(published.size / 1024).toFixed(0)} KiB packed, ${(published.unpackedSize / 1024).toFixed(0)} KiB unpacked`,
);

const required = ['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts'];
const absent = required.filter((f) => !fileSet.has(f));
check(absent.length === 0, `npm publish uploads ${required.join(', ')}`, absent);

const forbidden = files.filter((f) =>
  /(^|\/)(src|test|tests|__tests__|coverage|node_modules)\/|\.(spec|test|e2e-spec|faults-spec|system-spec)\.|\.tsbuildinfo$|(^|\/)\.(env|npmrc)|\.tgz$|(^|\/)tsconfig.*\.json$/.test(
    f,
  ),
);
check(forbidden.length === 0, 'it uploads no sources, tests, specs, build info, tsconfig, .env/.npmrc or tarballs', forbidden);
const outside = files.filter((f) => !/^(dist\/.+|package\.json|README\.md|LICENSE(\.md)?)$/.test(f));
check(outside.length === 0, 'it uploads only dist/, package.json, README.md (and a LICENSE)', outside);

if (repoRoot) {
  checkPackageReadme(pkgDir, repoRoot, fileSet);
  // Nothing missing: each source file of the package ships as its .js and .d.ts.
  const srcDir = join(repoRoot, 'libs', 'telemetry', 'src');
  const sources = readdirSync(srcDir, { recursive: true })
    .map((f) => String(f).split(sep).join('/'))
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && !/\.(spec|test)\.ts$/.test(f));
  const unshipped = sources
    .flatMap((f) => [`dist/${f.replace(/\.ts$/, '.js')}`, `dist/${f.replace(/\.ts$/, '.d.ts')}`])
    .filter((f) => !fileSet.has(f));
  check(
    sources.length > 0 && unshipped.length === 0,
    `every one of the ${sources.length} source files of libs/telemetry/src ships as dist/*.js and dist/*.d.ts`,
    unshipped,
  );
  if (existsSync(join(repoRoot, 'libs', 'telemetry', 'LICENSE'))) check(fileSet.has('LICENSE'), 'it ships libs/telemetry/LICENSE');
}
if (!files.some((f) => /^LICEN[CS]E/i.test(f))) {
  note(
    `package.json says "license": ${JSON.stringify(pkg.license)}, but no LICENSE file is shipped (npm adds one from libs/telemetry/ when it is there)`,
  );
}
for (const field of ['repository', 'homepage', 'bugs']) {
  if (pkg[field] === undefined) note(`package.json has no "${field}" (npm shows none on the package page)`);
}

// ---- package.json: what consumers and npm read
check(pkg.type === 'module', 'package.json: "type": "module" (an ES module package)');
check(typeof pkg.engines?.node === 'string' && pkg.engines.node.length > 0, `package.json: engines.node is set (${pkg.engines?.node})`);
const targets = [];
const collect = (value, where) => {
  if (typeof value === 'string') targets.push([where, value]);
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) collect(v, `${where}.${k}`);
};
collect(pkg.exports, 'exports');
if (pkg.main) targets.push(['main', pkg.main]);
if (pkg.types) targets.push(['types', pkg.types]);
const badTargets = targets.filter(([, t]) => !t.startsWith('./') || !fileSet.has(normalize(t.slice(2))));
check(
  targets.length > 0 && badTargets.length === 0,
  `every exports/main/types target is a shipped file (${targets.length} targets)`,
  badTargets.map(([w, t]) => `${w}: ${t}`),
);
const dotExport = pkg.exports?.['.'];
check(
  dotExport && typeof dotExport === 'object' && Object.keys(dotExport)[0] === 'types',
  'exports["."] lists "types" first (TypeScript takes the first condition that matches)',
);

// ---- every specifier in the shipped code
const declared = new Set([
  ...Object.keys(pkg.dependencies ?? {}),
  ...Object.keys(pkg.peerDependencies ?? {}),
  ...Object.keys(pkg.optionalDependencies ?? {}),
]);
const packageOf = (spec) => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);

function specifiers(sf) {
  const found = [];
  const visit = (node) => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      found.push({ spec: node.moduleSpecifier.text, dynamic: false });
    } else if (ts.isCallExpression(node) && node.arguments.length > 0 && ts.isStringLiteralLike(node.arguments[0])) {
      if (node.expression.kind === ts.SyntaxKind.ImportKeyword) found.push({ spec: node.arguments[0].text, dynamic: true });
      else if (ts.isIdentifier(node.expression) && node.expression.text === 'require')
        found.push({ spec: node.arguments[0].text, dynamic: false });
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      found.push({ spec: node.argument.literal.text, dynamic: false });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

// Top-level await: an `await` (or `for await`, `await using`) outside every function.
// require(esm) refuses a graph holding one (ERR_REQUIRE_ASYNC_MODULE).
function topLevelAwaits(sf) {
  const found = [];
  const isFunctionLike = (n) => ts.isFunctionLike(n) || ts.isClassStaticBlockDeclaration(n);
  const visit = (node, inFunction) => {
    const topLevel = !inFunction;
    if (topLevel) {
      const isAwait =
        ts.isAwaitExpression(node) ||
        (ts.isForOfStatement(node) && node.awaitModifier !== undefined) ||
        (ts.isVariableDeclarationList(node) && (node.flags & ts.NodeFlags.AwaitUsing) === ts.NodeFlags.AwaitUsing);
      if (isAwait) {
        const { line } = sf.getLineAndCharacterOfPosition(node.getStart(sf));
        found.push(`${sf.fileName}:${line + 1}: ${node.getText(sf).split('\n')[0].slice(0, 80)}`);
      }
    }
    ts.forEachChild(node, (child) => visit(child, inFunction || isFunctionLike(node)));
  };
  visit(sf, false);
  return found;
}

const jsFiles = files.filter((f) => f.endsWith('.js'));
const dtsFiles = files.filter((f) => f.endsWith('.d.ts'));
const unresolved = [];
const undeclared = [];
const tla = [];
let relCount = 0;
const bare = new Set();
for (const file of [...jsFiles, ...dtsFiles]) {
  const text = readFileSync(join(pkgDir, file), 'utf8');
  const isDts = file.endsWith('.d.ts');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ESNext, true, isDts ? ts.ScriptKind.TS : ts.ScriptKind.JS);
  for (const { spec } of specifiers(sf)) {
    if (spec.startsWith('.')) {
      relCount++;
      let target = normalize(join(dirname(file), spec));
      // In a declaration file, './x.js' names the types of x.js: './x.d.ts'.
      if (isDts) target = target.replace(/\.js$/, '.d.ts');
      if (!fileSet.has(target)) unresolved.push(`${file}: '${spec}' (${target} is not shipped)`);
    } else if (!isBuiltin(spec)) {
      bare.add(spec);
      if (!declared.has(packageOf(spec))) undeclared.push(`${file}: '${spec}'`);
    }
  }
  if (!isDts) tla.push(...topLevelAwaits(sf));
}
check(
  unresolved.length === 0,
  `every relative import in the ${jsFiles.length} .js and ${dtsFiles.length} .d.ts files names a shipped file (${relCount} imports)`,
  unresolved,
);
check(
  undeclared.length === 0,
  `every package they import is a node: builtin or declared in dependencies/peerDependencies (${[...bare].sort().join(', ')})`,
  undeclared,
);
check(
  tla.length === 0,
  `no top-level await in any of the ${jsFiles.length} .js files (require(esm) refuses one: ERR_REQUIRE_ASYNC_MODULE)`,
  tla,
);
const withoutTypes = jsFiles.filter((f) => !fileSet.has(f.replace(/\.js$/, '.d.ts')));
check(withoutTypes.length === 0, 'every .js file has its .d.ts', withoutTypes);

// ---- source maps: they name ../src/*.ts, which is not shipped, so each must carry its sources inline
const mapProblems = [];
let maps = 0;
for (const file of jsFiles) {
  const text = readFileSync(join(pkgDir, file), 'utf8');
  const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(text)?.[1];
  if (!url) continue;
  if (url.startsWith('data:')) continue;
  const mapFile = normalize(join(dirname(file), url));
  if (!fileSet.has(mapFile)) {
    mapProblems.push(`${file}: sourceMappingURL ${url} is not shipped`);
    continue;
  }
  maps++;
  const map = JSON.parse(readFileSync(join(pkgDir, mapFile), 'utf8'));
  const sources = map.sources ?? [];
  const contents = map.sourcesContent ?? [];
  sources.forEach((source, i) => {
    const shipped = fileSet.has(normalize(join(dirname(mapFile), map.sourceRoot ?? '', source)));
    if (!shipped && typeof contents[i] !== 'string') mapProblems.push(`${mapFile}: source ${source} is neither shipped nor inline`);
  });
}
const orphanMaps = files.filter((f) => f.endsWith('.map') && !fileSet.has(f.replace(/\.map$/, '')));
mapProblems.push(...orphanMaps.map((f) => `${f}: no file of its own`));
check(
  mapProblems.length === 0,
  `the ${maps} source maps are whole: each names a shipped map, and sources not shipped are inline (sourcesContent)`,
  mapProblems,
);

process.exitCode = failures === 0 ? 0 : 1;
