#!/usr/bin/env node
// Copies the browser libraries PeerLearn serves itself from node_modules into
// static/vendor/ (nothing is loaded from a CDN). Run via `npm run build`.
// Each library's licence is copied next to it.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const nm = join(root, 'node_modules');
const vendor = join(root, 'static', 'vendor');

function pkg(name) {
  return JSON.parse(readFileSync(join(nm, name, 'package.json'), 'utf8'));
}

function firstExisting(candidates, what) {
  const found = candidates.map((c) => join(nm, c)).find((p) => existsSync(p));
  if (!found) {
    throw new Error(`vendor_assets: none of ${candidates.join(', ')} found for ${what}; run \`npm ci\` first`);
  }
  return found;
}

function copy(src, destRel) {
  const dest = join(vendor, destRel);
  mkdirSync(dirname(dest), { recursive: true });
  if (/\.(js|css)$/.test(destRel)) {
    // Drop `//# sourceMappingURL=...` comments: the .map files are not vendored, and
    // Django's ManifestStaticFilesStorage (collectstatic) fails on a missing map.
    const text = readFileSync(src, 'utf8').replace(/^\/\/# sourceMappingURL=.*$/gm, '').replace(/^\/\*# sourceMappingURL=.*\*\/$/gm, '');
    writeFileSync(dest, text.trimEnd() + '\n');
  } else {
    copyFileSync(src, dest);
  }
  console.log(`  ${src.slice(root.length + 1)} -> static/vendor/${destRel}`);
}

// Alpine's MIT licence text (the @alpinejs/csp npm package does not ship a LICENSE file).
function alpineLicense(version, author) {
  return `Alpine.js (@alpinejs/csp ${version})
https://github.com/alpinejs/alpine

MIT License

Copyright © 2019-present ${author} and contributors

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
SOFTWARE.
`;
}

console.log('Vendoring front-end libraries into static/vendor/ ...');
const versions = {};

// --- Alpine.js, CSP build -------------------------------------------------
{
  const p = pkg('@alpinejs/csp');
  versions['@alpinejs/csp'] = p.version;
  rmSync(join(vendor, 'alpinejs'), { recursive: true, force: true });
  copy(firstExisting(['@alpinejs/csp/dist/cdn.min.js'], 'Alpine CSP'), 'alpinejs/alpine-csp.min.js');
  const licenseFile = ['LICENSE', 'LICENSE.md', 'LICENSE.txt']
    .map((f) => join(nm, '@alpinejs/csp', f))
    .find((f) => existsSync(f));
  let text = licenseFile ? readFileSync(licenseFile, 'utf8') : alpineLicense(p.version, p.author || 'Caleb Porzio');
  // The CDN bundle inlines @vue/reactivity; include its licence too.
  const vueLicense = join(nm, '@vue/reactivity/LICENSE');
  if (existsSync(vueLicense)) {
    const v = pkg('@vue/reactivity').version;
    text += `\n\n----------------------------------------------------------------------\nBundled: @vue/reactivity ${v}\n\n${readFileSync(vueLicense, 'utf8')}`;
  }
  mkdirSync(join(vendor, 'alpinejs'), { recursive: true });
  writeFileSync(join(vendor, 'alpinejs', 'LICENSE'), text);
  console.log('  (licence) -> static/vendor/alpinejs/LICENSE');
}

// --- Feather icons --------------------------------------------------------
{
  versions['feather-icons'] = pkg('feather-icons').version;
  rmSync(join(vendor, 'feather-icons'), { recursive: true, force: true });
  copy(firstExisting(['feather-icons/dist/feather.min.js'], 'feather-icons'), 'feather-icons/feather.min.js');
  const sprite = join(nm, 'feather-icons/dist/feather-sprite.svg');
  if (existsSync(sprite)) copy(sprite, 'feather-icons/feather-sprite.svg');
  copy(firstExisting(['feather-icons/LICENSE'], 'feather-icons licence'), 'feather-icons/LICENSE');
}

// --- Chart.js -------------------------------------------------------------
{
  versions['chart.js'] = pkg('chart.js').version;
  rmSync(join(vendor, 'chartjs'), { recursive: true, force: true });
  // 4.x ships dist/chart.umd.min.js in newer releases; older 4.x only chart.umd.js (already minified).
  copy(
    firstExisting(['chart.js/dist/chart.umd.min.js', 'chart.js/dist/chart.umd.js'], 'Chart.js'),
    'chartjs/chart.umd.min.js',
  );
  copy(firstExisting(['chart.js/LICENSE.md', 'chart.js/LICENSE'], 'Chart.js licence'), 'chartjs/LICENSE.md');
}

// --- Fonts (@fontsource, latin subset, woff2) ------------------------------
// Institutions pick one of these in the console (Institution.font); the theme layouts
// load static/vendor/fonts/fonts.css, which only ever points at files under static/.
const FONTS = [
  { pkg: '@fontsource/inter', family: 'Inter', slug: 'inter', weights: [400, 600] },
  { pkg: '@fontsource/source-sans-3', family: 'Source Sans 3', slug: 'source-sans-3', weights: [400, 600] },
  { pkg: '@fontsource/merriweather', family: 'Merriweather', slug: 'merriweather', weights: [400, 700] },
];
{
  rmSync(join(vendor, 'fonts'), { recursive: true, force: true });
  let css = '/* Generated by scripts/vendor_assets.mjs from @fontsource packages (latin subset). */\n';
  for (const font of FONTS) {
    versions[font.pkg] = pkg(font.pkg).version;
    for (const weight of font.weights) {
      const file = `${font.slug}-latin-${weight}-normal.woff2`;
      copy(firstExisting([`${font.pkg}/files/${file}`], `${font.family} ${weight}`), `fonts/${font.slug}/${file}`);
      css +=
        `@font-face{font-family:'${font.family}';font-style:normal;font-display:swap;font-weight:${weight};` +
        `src:url(./${font.slug}/${file}) format('woff2');}\n`;
    }
    copy(firstExisting([`${font.pkg}/LICENSE`], `${font.family} licence`), `fonts/${font.slug}/LICENSE`);
  }
  writeFileSync(join(vendor, 'fonts', 'fonts.css'), css);
  console.log('  (font faces) -> static/vendor/fonts/fonts.css');
}

writeFileSync(join(vendor, 'VERSIONS.json'), JSON.stringify(versions, null, 2) + '\n');
console.log('  versions -> static/vendor/VERSIONS.json', versions);
