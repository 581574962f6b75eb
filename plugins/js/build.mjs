// Builds dist/stoplight.js, the plugin's one JS bundle (fiftyone.yml
// `js_bundle`), from src/, minified like FiftyOne's own plugin bundles, with
// a linked source map (dist/stoplight.js.map) so the App's devtools show
// src/. The App loads it with a <script> tag; it takes
// React and FiftyOne's packages from the App's globals (window.React,
// window.__fop__, ...), so nothing of theirs is bundled.
//
//   npm ci && npm run build              # writes dist/stoplight.js
//   node build.mjs --outfile /tmp/x.js   # elsewhere (the test that the
//                                        # committed bundle is this build;
//                                        # the map goes next to it)
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const i = process.argv.indexOf("--outfile");
const outfile = i > 0 ? process.argv[i + 1] : path.join(here, "dist", "stoplight.js");

await build({
  absWorkingDir: here,
  entryPoints: ["src/index.js"],
  outfile,
  bundle: true,
  format: "iife",
  target: "es2020",
  jsx: "transform",
  jsxFactory: "React.createElement",
  jsxFragment: "React.Fragment",
  loader: { ".js": "jsx" },
  legalComments: "none",
  charset: "utf8",
  minify: true,
  sourcemap: "linked",
  sourcesContent: true,
  banner: { js: "// Stoplight App components. Built from plugins/js/src by `npm run build` (plugins/js/build.mjs); do not edit." },
  logLevel: "warning",
});
