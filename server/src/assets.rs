//! The built widget, served under `/widget/`: Trunk's content-hashed files (cached for a year)
//! and a stable loader, `/widget/latch.js`, that host pages include and that knows the current
//! hashed names. The files are read once at start from `widget_dir`; a server built without the
//! widget still runs (the loader then says the widget is missing).

use std::collections::HashMap;
use std::path::Path;

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
}

impl WidgetAssets {
    /// Reads Trunk's output directory (missing directory: no widget).
    pub fn load(dir: &Path) -> Self {
        let mut assets = WidgetAssets::default();
        let Ok(entries) = std::fs::read_dir(dir) else {
            tracing::warn!(dir = %dir.display(), "no built widget found; build it with `widget/build`");
            assets.loader = assets.build_loader();
            return assets;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let content_type = match Path::new(&name).extension().and_then(|e| e.to_str()) {
                Some("js") => "text/javascript; charset=utf-8",
                Some("wasm") => "application/wasm",
                Some("css") => "text/css; charset=utf-8",
                _ => continue,
            };
            let Ok(bytes) = std::fs::read(entry.path()) else { continue };
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
