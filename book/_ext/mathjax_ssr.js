// Server-side MathJax for the klbook HTML site (called by book/_ext/klbook_site.py at the end of a build).
//
//   node mathjax_ssr.js < request.json > answer.json
//
// request: {"mathjax": "<mathjax-full 3 folder with js/>", "fontURL": "<url of the woff-v2 fonts>",
//           "packages": [...TeX packages], "tex": {...TeX input options, e.g. macros},
//           "formulas": [{"tex": "...", "display": true|false}, ...]}
// answer:  {"html": ["<mjx-container ...>", ...], "errors": [null | "message", ...], "css": "..."}
//
// It uses only MathJax's compiled CommonJS modules (js/) that the PyPI package django-static-mathjax
// ships (it is npm's mathjax-full 3.2.2): the lite DOM adaptor, TeX input, CommonHTML output and the
// assistive-MathML extension (hidden MathML for screen readers, as client-side MathJax adds by default).
// None of these needs one of mathjax-full's npm dependencies (mhchemparser, mj-context-menu and
// speech-rule-engine are needed only by mhchem, the menu and the speech extensions, not loaded here).
'use strict';

const fs = require('fs');
const path = require('path');

const request = JSON.parse(fs.readFileSync(0, 'utf8'));
const js = (name) => require(path.join(request.mathjax, 'js', name));

const {mathjax} = js('mathjax.js');
const {TeX} = js('input/tex.js');
const {CHTML} = js('output/chtml.js');
const {liteAdaptor} = js('adaptors/liteAdaptor.js');
const {RegisterHTMLHandler} = js('handlers/html.js');
const {AssistiveMmlHandler} = js('a11y/assistive-mml.js');

const packages = request.packages;
for (const name of packages) {  // each package registers itself: input/tex/<name>/<Name>Configuration.js
  const folder = path.join(request.mathjax, 'js', 'input', 'tex', name);
  js(`input/tex/${name}/${fs.readdirSync(folder).find((f) => f.endsWith('Configuration.js'))}`);
}

const adaptor = liteAdaptor();
AssistiveMmlHandler(RegisterHTMLHandler(adaptor));
const tex = new TeX({...(request.tex || {}), packages});
const chtml = new CHTML({fontURL: request.fontURL, adaptiveCSS: true});
const doc = mathjax.document('', {InputJax: tex, OutputJax: chtml});

const html = [];
const errors = [];
for (const {tex: source, display} of request.formulas) {
  let node;
  try {
    node = doc.convert(source, {display});  // scale 1: the page's CSS scales it to the text around it
  } catch (err) {
    html.push(null);
    errors.push(String(err && err.message || err));
    continue;
  }
  const merror = adaptor.tags(node, 'mjx-merror')[0];
  errors.push(merror ? (adaptor.getAttribute(merror, 'data-mjx-error') || adaptor.textContent(merror)) : null);
  html.push(adaptor.outerHTML(node));
}

const css = adaptor.textContent(chtml.styleSheet(doc));
process.stdout.write(JSON.stringify({html, errors, css}));
