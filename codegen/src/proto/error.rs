//! The build error: one readable message, with `file:line:column` where the `.proto` parser
//! knows it.

use std::fmt;
use std::path::PathBuf;

/// Why [`Builder::compile_protos`](super::Builder::compile_protos) failed.
///
/// Its `Display` is the whole story, written for a person reading a failed build: a `.proto`
/// syntax or type error starts with `file:line:column:`, a missing import lists the include
/// paths that were searched, and a service that cannot be generated names its file, service
/// and method. `Debug` prints the same text, so a build script's
/// `fn main() -> Result<(), Box<dyn std::error::Error>>` shows it as it is.
pub struct Error {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    pub(crate) fn new(message: impl Into<String>) -> Error {
        Error { message: message.into(), source: None }
    }

    /// Every problem found with the services, one per line.
    pub(crate) fn services(problems: Vec<String>) -> Error {
        let n = problems.len();
        let head = if n == 1 {
            "weft-codegen: cannot generate a service:".to_owned()
        } else {
            format!("weft-codegen: cannot generate services ({n} problems):")
        };
        let body: String = problems.iter().map(|p| format!("\n  {p}")).collect();
        Error::new(format!("{head}{body}"))
    }

    /// A protox error, located and, for a missing file, with what was searched.
    pub(crate) fn parse(err: protox::Error, includes: &[PathBuf]) -> Error {
        let mut message = locate(&err, includes);
        if err.is_file_not_found() {
            let searched = if includes.is_empty() {
                "no include paths were given".to_owned()
            } else {
                let list: Vec<_> = includes.iter().map(|p| format!("`{}`", p.display())).collect();
                let relative = includes.iter().any(|p| p.is_relative());
                let cwd = match std::env::current_dir() {
                    Ok(dir) if relative => format!(" (relative to `{}`)", dir.display()),
                    _ => String::new(),
                };
                format!("searched the include paths {}{cwd}", list.join(", "))
            };
            message.push_str(&format!(
                "\n  {searched}, then the files weft-codegen provides itself: `weft/options.proto` and the \
                 well-known types `google/protobuf/*.proto`; add the directory that holds it to the include paths \
                 (the second argument of `compile_protos`)"
            ));
        }
        Error { message, source: Some(Box::new(err)) }
    }

    /// An error writing or generating the output.
    pub(crate) fn io(context: &str, err: std::io::Error) -> Error {
        Error { message: format!("weft-codegen: {context}: {err}"), source: Some(Box::new(err)) }
    }
}

/// `path:line:column: message` and any help, from the diagnostic's first label. The path is the
/// file on disk (found under an include path) when there is one, so that editors can jump to it;
/// otherwise the name the file was imported by.
fn locate(err: &protox::Error, includes: &[PathBuf]) -> String {
    use miette::Diagnostic;
    let message = err.to_string();
    let on_disk = |name: &str| -> String {
        includes
            .iter()
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
            .map_or_else(|| name.to_owned(), |path| path.display().to_string())
    };
    let label = err.labels().and_then(|mut labels| labels.next());
    let located = label.as_ref().and_then(|label| {
        let contents = err.source_code()?.read_span(label.inner(), 0, 0).ok()?;
        let file = contents.name().or_else(|| err.file())?;
        Some(format!("{}:{}:{}: {message}", on_disk(file), contents.line() + 1, contents.column() + 1))
    });
    let mut out = located.unwrap_or_else(|| match err.file() {
        Some(file) if !message.contains(file) => format!("{}: {message}", on_disk(file)),
        _ => message.clone(),
    });
    // protox's labels are mostly "found here" and the like, which the location already says.
    if let Some(text) = label.as_ref().and_then(|l| l.label())
        && !text.ends_with(" here")
    {
        out.push_str(&format!(" ({text})"));
    }
    if let Some(help) = err.help() {
        out.push_str(&format!("\n  help: {help}"));
    }
    out
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A build script returning `Err` prints its `Debug`: make that the readable message.
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}
