//! The `.proto` front-end proper: prost-build hands each service to [`Generator`], which lowers
//! it into the same [model](crate::model) the trait macro produces and calls the same
//! [emitter](crate::emit).
//!
//! prost-build resolves every message to its Rust path (`Point`, `super::common::Id`,
//! `::prost_types::Timestamp`, `()` for `google.protobuf.Empty`), so the model gets types that
//! name what prost generated. What prost-build drops, extension options such as
//! `(weft.fire_and_forget)` and `(weft.idempotent)`, is read beforehand from protox's descriptor
//! pool; standard options such as `idempotency_level` come with the service.

use crate::emit::{self, Parts};
use crate::model::{self, Method, Model, Service};
use proc_macro2::{Span, TokenStream};
use prost_types::method_options::IdempotencyLevel;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use syn::{Attribute, Ident, Path, Type};

/// The fully qualified name of the fire-and-forget option.
pub(crate) const FIRE_AND_FORGET_OPTION: &str = "weft.fire_and_forget";

/// The fully qualified name of the idempotent option.
pub(crate) const IDEMPOTENT_OPTION: &str = "weft.idempotent";

/// What the generator needs to know besides the service prost-build hands it.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) krate: Path,
    pub(crate) parts: Parts,
    pub(crate) context: bool,
    /// `(proto path, attributes)` for clients and for servers.
    pub(crate) client_attrs: Vec<(String, Vec<Attribute>)>,
    pub(crate) server_attrs: Vec<(String, Vec<Attribute>)>,
    /// Routes the builder declared fire-and-forget.
    pub(crate) fire_and_forget: BTreeSet<String>,
    /// Methods (`pkg.Service.Method`) whose `.proto` sets `(weft.fire_and_forget) = true`.
    pub(crate) fire_and_forget_option: BTreeSet<String>,
    /// Methods (`pkg.Service.Method`) whose `.proto` sets `(weft.idempotent)`, and to what.
    pub(crate) idempotent_option: BTreeMap<String, bool>,
    /// Routes the builder declared idempotent.
    pub(crate) idempotent: BTreeSet<String>,
    /// The file each service (`pkg.Service`) is declared in.
    pub(crate) files: HashMap<String, String>,
}

/// What the generator reports back after prost-build is done with it.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) problems: Vec<String>,
    /// Every route generated, to check the builder's fire-and-forget routes against.
    pub(crate) routes: BTreeSet<String>,
}

/// The `prost_build::ServiceGenerator`.
#[derive(Debug)]
pub(crate) struct Generator {
    pub(crate) settings: Rc<Settings>,
    pub(crate) outcome: Rc<RefCell<Outcome>>,
}

impl prost_build::ServiceGenerator for Generator {
    fn generate(&mut self, service: prost_build::Service, buf: &mut String) {
        let mut outcome = self.outcome.borrow_mut();
        let full_name = full_name(&service);
        outcome.routes.extend(service.methods.iter().map(|m| format!("{full_name}/{}", m.proto_name)));
        match lower(&self.settings, &service) {
            Ok(model) => {
                buf.push('\n');
                buf.push_str(&format(emit::service_parts(&model, self.settings.parts)));
            }
            Err(problems) => outcome.problems.extend(problems),
        }
    }
}

/// Formats emitted code the way `cargo expand` would show it, so that "go to definition" lands
/// in readable code.
pub(crate) fn format(tokens: TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        // Unreachable for code the emitter produced; rustc will point at the problem.
        Err(_) => tokens.to_string(),
    }
}

/// Lowers one service into the model, or says why it cannot be generated.
pub(crate) fn lower(settings: &Settings, service: &prost_build::Service) -> Result<Service, Vec<String>> {
    let full_name = full_name(service);
    let file = settings.files.get(&full_name).map_or("<unknown file>", String::as_str);
    let mut problems = Vec::new();
    let mut problem = |method: Option<&str>, text: String| {
        let at = match method {
            Some(m) => format!("{file}: service `{full_name}`, method `{m}`"),
            None => format!("{file}: service `{full_name}`"),
        };
        problems.push(format!("{at}: {text}"));
    };

    let ident = rust_ident(&service.name).unwrap_or_else(|| {
        problem(None, format!("`{}` is not a Rust identifier", service.name));
        Ident::new("Service", Span::call_site())
    });
    let mut attrs = Vec::new();
    if service.options.deprecated() {
        attrs.push(syn::parse_quote!(#[deprecated]));
    }
    let fq = format!(".{full_name}");
    let pick = |list: &[(String, Vec<Attribute>)]| -> Vec<Attribute> {
        list.iter().filter(|(path, _)| path_matches(path, &fq)).flat_map(|(_, a)| a.iter().cloned()).collect()
    };

    let mut methods = Vec::new();
    let mut rust_names: HashMap<String, String> = HashMap::new();
    for m in &service.methods {
        let route = format!("{full_name}/{}", m.proto_name);
        if route.len() > 255 {
            problem(
                Some(&m.proto_name),
                format!(
                    "the route `{route}` is {} bytes long; a route travels as an RSocket routing tag, which holds at \
                     most 255 bytes: shorten the package, the service or the method name",
                    route.len()
                ),
            );
        }
        let method_name = format!("{full_name}.{}", m.proto_name);
        let by_option = settings.fire_and_forget_option.contains(&method_name);
        let fire_and_forget = by_option || settings.fire_and_forget.contains(&route);
        let model = match (m.client_streaming, m.server_streaming) {
            _ if fire_and_forget => Model::FireAndForget,
            (false, false) => Model::RequestResponse,
            (false, true) => Model::RequestStream,
            (true, false) => Model::ClientStreaming,
            (true, true) => Model::Channel,
        };
        if fire_and_forget {
            let how =
                if by_option { "`option (weft.fire_and_forget) = true`" } else { "the builder's `fire_and_forget`" };
            let mut wrong = Vec::new();
            if m.client_streaming {
                wrong.push("takes a `stream`".to_owned());
            }
            if m.server_streaming {
                wrong.push("returns a `stream`".to_owned());
            }
            if m.output_proto_type != ".google.protobuf.Empty" {
                wrong.push(format!("returns `{}`", m.output_proto_type.trim_start_matches('.')));
            }
            if !wrong.is_empty() {
                problem(
                    Some(&m.proto_name),
                    format!(
                        "{how} makes it fire-and-forget, but it {}; a fire-and-forget method takes one message \
                         and returns nothing: write `rpc {}({}) returns (google.protobuf.Empty)`, or drop the option",
                        wrong.join(" and "),
                        m.proto_name,
                        m.input_proto_type.trim_start_matches('.'),
                    ),
                );
                continue;
            }
        }

        // `(weft.idempotent)` if given, either way; otherwise gRPC's standard `idempotency_level`,
        // which is what proto authors already write.
        // The builder's word over both.
        let level = m.options.idempotency_level();
        let by_builder = settings.idempotent.contains(&route);
        let idempotent = by_builder
            || match settings.idempotent_option.get(&method_name) {
                Some(&yes) => yes,
                None => matches!(level, IdempotencyLevel::Idempotent | IdempotencyLevel::NoSideEffects),
            };
        if idempotent && m.client_streaming {
            let how = if by_builder {
                format!("the builder's `idempotent(\"{route}\")`")
            } else if settings.idempotent_option.contains_key(&method_name) {
                "`option (weft.idempotent) = true`".to_owned()
            } else {
                format!("`option idempotency_level = {}`", level.as_str_name())
            };
            problem(
                Some(&m.proto_name),
                format!(
                    "{how} marks it idempotent, but it takes a `stream` of requests, which cannot be replayed, so \
                     its calls cannot be retried: drop the option; only a method that takes one message (no \
                     `stream` before the request type) can be idempotent"
                ),
            );
            continue;
        }

        // prost-build's snake_case name, already `r#match` for keywords and `self_` for the few
        // that cannot be raw; the client's own method names get a `_` too.
        let mut name = m.name.clone();
        if model::RESERVED_CLIENT_NAMES.contains(&name.as_str()) {
            name.push('_');
        }
        let Some(ident) = rust_ident(&name) else {
            problem(Some(&m.proto_name), format!("`{name}` is not a Rust identifier"));
            continue;
        };
        if let Some(first) = rust_names.insert(name.clone(), m.proto_name.clone()) {
            problem(
                Some(&m.proto_name),
                format!(
                    "its Rust name `{name}` is also the Rust name of `{first}`; rename one of them in the .proto \
                     (Rust method names are the rpc names in snake_case)"
                ),
            );
            continue;
        }
        let (Some(request), Some(response)) = (rust_type(&m.input_type), rust_type(&m.output_type)) else {
            problem(
                Some(&m.proto_name),
                format!(
                    "prost-build named its types `{}` and `{}`, which do not parse as Rust types",
                    m.input_type, m.output_type
                ),
            );
            continue;
        };
        let mut method_attrs = Vec::new();
        if m.options.deprecated() {
            method_attrs.push(syn::parse_quote!(#[deprecated]));
        }
        methods.push(Method {
            ident,
            name: m.proto_name.clone(),
            model,
            request,
            response: if model == Model::FireAndForget { syn::parse_quote!(()) } else { response },
            request_ident: Ident::new("request", Span::call_site()),
            context_ident: settings.context.then(|| Ident::new("ctx", Span::call_site())),
            docs: doc_lines(&m.comments),
            attrs: method_attrs,
            spelled: None,
            default_body: None,
            idempotent,
            span: Span::call_site(),
        });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Service {
        ident,
        name: service.proto_name.clone(),
        package: (!service.package.is_empty()).then(|| service.package.clone()),
        vis: syn::parse_quote!(pub),
        docs: doc_lines(&service.comments),
        attrs,
        client_attrs: pick(&settings.client_attrs),
        server_attrs: pick(&settings.server_attrs),
        supertraits: Vec::new(),
        krate: settings.krate.clone(),
        codec: None,
        methods,
    })
}

/// `package.Service`, or `Service` without a package.
fn full_name(service: &prost_build::Service) -> String {
    if service.package.is_empty() {
        service.proto_name.clone()
    } else {
        format!("{}.{}", service.package, service.proto_name)
    }
}

/// Doc lines from `.proto` comments, escaped as prost-build escapes its own (`[x]` is not a
/// link, an indented line is not a code block).
fn doc_lines(comments: &prost_build::Comments) -> Vec<String> {
    let attached = prost_build::Comments { leading_detached: Vec::new(), ..comments.clone() };
    let mut buf = String::new();
    attached.append_with_indent(0, &mut buf);
    buf.lines().map(|line| line.strip_prefix("///").unwrap_or(line).to_owned()).collect()
}

fn rust_ident(name: &str) -> Option<Ident> {
    syn::parse_str::<Ident>(name).ok()
}

fn rust_type(name: &str) -> Option<Type> {
    syn::parse_str::<Type>(name).ok()
}

/// Whether a prost-style path selects the service `fq` (`.pkg.Service`): `.` selects every
/// service, `.pkg` a package and what is under it, `.pkg.Service` one service, and a path
/// without the leading dot matches by suffix (`Service`, `pkg.Service`).
pub(crate) fn path_matches(path: &str, fq: &str) -> bool {
    if path == "." || path.is_empty() {
        return true;
    }
    if path.starts_with('.') {
        fq == path || fq.strip_prefix(path).is_some_and(|rest| rest.starts_with('.'))
    } else {
        fq.strip_suffix(path).is_some_and(|rest| rest.ends_with('.'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_select_services_as_prost_paths_do() {
        for (path, yes) in [
            (".", true),
            ("", true),
            (".routeguide", true),
            (".routeguide.RouteGuide", true),
            ("RouteGuide", true),
            ("routeguide.RouteGuide", true),
            (".route", false),
            (".routeguide.Route", false),
            ("Guide", false),
            (".other", false),
        ] {
            assert_eq!(path_matches(path, ".routeguide.RouteGuide"), yes, "{path}");
        }
    }

    #[test]
    fn comments_become_doc_lines_with_brackets_escaped() {
        let comments = prost_build::Comments {
            leading_detached: vec![vec![" detached".into()]],
            leading: vec![" Gets [the] feature.".into(), "".into(), " More.".into()],
            trailing: vec![],
        };
        assert_eq!(doc_lines(&comments), [" Gets \\[the\\] feature.", "", " More."]);
    }
}
