//! The built widget, served under `/widget/`: Trunk's content-hashed files (cached for a year)
//! and a stable loader, `/widget/latch.js`, that host pages include and that knows the current
//! hashed names. The files are read once at start: from `widget_dir` when it is configured,
//! else from the copy built into the binary (embedded at compile time when `widget/build` has
//! filled `target/widget-dist`), else from `./target/widget-dist`. A server without the widget
//! still runs (the loader then says the widget is missing).

use std::collections::HashMap;
use std::path::Path;

/// Trunk's output as it was when the server was compiled (in every profile, so the binary
/// needs no files beside it); empty when the widget had not been built.
#[derive(rust_embed::Embed)]
#[folder = "../target/widget-dist"]
#[allow_missing = true]
#[include = "*.js"]
#[include = "*.wasm"]
#[include = "*.css"]
struct Built;

/// One file.
#[derive(Debug, Clone)]
pub struct Asset {
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

/// The widget's files, by name.
#[derive(Debug, Clone, Default)]
pub struct WidgetAssets {
    pub files: HashMap<String, Asset>,
    /// Hashed names of the JS glue, the WebAssembly module and the stylesheet.
    pub js: Option<String>,
    pub wasm: Option<String>,
    pub css: Option<String>,
    /// The loader script, built once the names are known.
    pub loader: String,
    /// Where the files came from, for the start-up summary.
    pub source: String,
}

impl WidgetAssets {
    /// The widget from `dir` if given, else the built-in copy, else `./target/widget-dist`.
    pub fn load(dir: Option<&Path>) -> Self {
        match dir {
            Some(dir) => Self::from_dir(dir),
            None if Built::iter().next().is_some() => Self::from_files(
                Built::iter().filter_map(|name| Some((name.to_string(), Built::get(&name)?.data.into_owned()))),
                "built into the binary".to_owned(),
            ),
            None => Self::from_dir(Path::new("target/widget-dist")),
        }
    }

    /// Reads Trunk's output directory (missing directory: no widget).
    fn from_dir(dir: &Path) -> Self {
        let Ok(entries) = std::fs::read_dir(dir) else {
            tracing::warn!(dir = %dir.display(), "no built widget found; build it with `widget/build`");
            return Self::from_files(std::iter::empty(), format!("none ({} does not exist)", dir.display()));
        };
        let files = entries.flatten().filter_map(|entry| {
            let bytes = std::fs::read(entry.path()).ok()?;
            Some((entry.file_name().to_string_lossy().into_owned(), bytes))
        });
        Self::from_files(files, format!("directory {}", dir.display()))
    }

    fn from_files(files: impl Iterator<Item = (String, Vec<u8>)>, source: String) -> Self {
        let mut assets = WidgetAssets { source, ..WidgetAssets::default() };
        for (name, bytes) in files {
            let content_type = match Path::new(&name).extension().and_then(|e| e.to_str()) {
                Some("js") => "text/javascript; charset=utf-8",
                Some("wasm") => "application/wasm",
                Some("css") => "text/css; charset=utf-8",
                _ => continue,
            };
            if name.ends_with("_bg.wasm") {
                assets.wasm = Some(name.clone());
            } else if name.ends_with(".js") && name.starts_with("latch-widget") {
                assets.js = Some(name.clone());
            } else if name.ends_with(".css") {
                assets.css = Some(name.clone());
            }
            assets.files.insert(name, Asset { content_type, bytes });
        }
        assets.loader = assets.build_loader();
        assets
    }

    /// The loader script: `window.Latch.mount(target, options)` loads the widget once, from the
    /// origin the loader itself came from, and mounts it.
    fn build_loader(&self) -> String {
        let (Some(js), Some(wasm)) = (&self.js, &self.wasm) else {
            return "console.error(\"Latch: the widget is not built on this server (run widget/build).\");\n\
                    window.Latch = { mount: function () { return Promise.reject(new Error(\"Latch widget not built\")); } };\n"
                .to_owned();
        };
        let css = self.css.as_deref().map(|c| format!("\"/widget/{c}\"")).unwrap_or_else(|| "null".into());
        format!(
            r#"/* Latch widget loader: include from your Latch server, then call Latch.mount(target, options). */
(function () {{
  "use strict";
  var script = document.currentScript;
  var base = new URL(script && script.src ? script.src : location.href).origin;
  var files = {{ js: "/widget/{js}", wasm: "/widget/{wasm}", css: {css} }};
  var loading = null;
  function load() {{
    if (!loading) {{
      loading = import(base + files.js).then(function (m) {{
        return m.default({{ module_or_path: base + files.wasm }}).then(function () {{ return m; }});
      }});
    }}
    return loading;
  }}
  window.Latch = {{
    mount: function (target, options) {{
      var o = Object.assign({{}}, options || {{}}, {{ apiBase: base, cssUrl: files.css ? base + files.css : undefined }});
      return load().then(function (m) {{ m.mount(target, o); }});
    }}
  }};
}})();
"#
        )
    }
}
