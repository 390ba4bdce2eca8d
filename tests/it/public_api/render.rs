//! Renders one crate's rustdoc JSON as the lines of its snapshot: the public items at their
//! preferred paths, each in Rust syntax on one line, in a fixed order. The module above says what
//! is shown and why; `FORMAT_VERSION` there names the format this reads.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

/// Of the auto traits rustdoc computes, the stable ones (`Freeze` and the like are unstable).
const AUTO_TRAITS: [&str; 5] = ["Send", "Sync", "Unpin", "UnwindSafe", "RefUnwindSafe"];

/// The snapshot's lines for one crate (all but its title).
pub(super) fn api(krate: &Value) -> String {
    Api::new(krate).render()
}

/// Where a line sorts within the item it belongs to.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Item,
    /// Fields and variants.
    Field,
    /// Methods, associated consts and types.
    Member,
    Impl,
}

/// One line of the snapshot. The derived order is the file's: visible before hidden, then by the
/// path of the item the line belongs to, then rank, then text.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Line {
    hidden: bool,
    group: String,
    rank: Rank,
    text: String,
}

/// A path by which a module makes something reachable, and what it reaches.
struct Reach {
    path: String,
    hidden: bool,
    target: Target,
}

enum Target {
    Local(u64),
    /// A re-export of another crate's item: its path and rustdoc's kind (`struct`, `proc_attribute`).
    External(String, String),
}

/// One crate's rustdoc JSON, and the preferred public path of each of its reachable items.
struct Api<'a> {
    krate: &'a Value,
    /// The preferred path of each local item reachable from the crate root, and whether it is hidden.
    public: HashMap<u64, (String, bool)>,
    lines: BTreeSet<Line>,
}

impl<'a> Api<'a> {
    fn new(krate: &'a Value) -> Self {
        let mut api = Api { krate, public: HashMap::new(), lines: BTreeSet::new() };
        let root = &krate["index"][id_key(&krate["root"])];
        let mut reached = Vec::new();
        api.walk(root, str_of(&root["name"]), false, 0, &mut reached);
        // Preferred: not hidden, then fewest segments, then first in order.
        let key = |(path, hidden): &(String, bool)| (*hidden, path.matches("::").count(), path.clone());
        for reach in &reached {
            if let Target::Local(id) = reach.target {
                let candidate = (reach.path.clone(), reach.hidden);
                let preferred = api.public.entry(id).or_insert_with(|| candidate.clone());
                if key(&candidate) < key(preferred) {
                    *preferred = candidate;
                }
            }
        }
        for reach in reached {
            let text = match reach.target {
                Target::Local(id) if api.public[&id].0 == reach.path => continue,
                Target::Local(id) => format!("pub use {} = {}", reach.path, api.public[&id].0),
                Target::External(path, kind) => format!("pub use {} = {path} // {kind}", reach.path),
            };
            api.push(reach.hidden, &reach.path, Rank::Item, text);
        }
        api
    }

    fn item(&self, id: &Value) -> &'a Value {
        &self.krate["index"][id_key(id)]
    }

    /// Collects every path through which `module` makes an item reachable.
    fn walk(&self, module: &Value, prefix: &str, hidden: bool, depth: usize, out: &mut Vec<Reach>) {
        // Modules that re-export each other would loop; no real API nests this deep.
        if depth > 16 {
            return;
        }
        for item in array(&module["inner"]["module"]["items"]).iter().map(|id| self.item(id)) {
            let hidden = hidden || is_hidden(item);
            let Some(import) = item["inner"].get("use") else {
                self.reach(item, format!("{prefix}::{}", str_of(&item["name"])), hidden, depth, out);
                continue;
            };
            let target = self.item(&import["id"]);
            let name = if import["is_glob"] == true { "*" } else { str_of(&import["name"]) };
            match (target["crate_id"] == 0, name) {
                (true, "*") => self.walk(target, prefix, hidden, depth + 1, out),
                (true, _) => self.reach(target, format!("{prefix}::{name}"), hidden, depth, out),
                // Another crate's item: by the path rustdoc records for it, if any.
                (false, _) => {
                    let summary = &self.krate["paths"][id_key(&import["id"])];
                    let source = path_of(&summary["path"]);
                    let source = if source.is_empty() { str_of(&import["source"]).to_string() } else { source };
                    let kind = summary["kind"].as_str().unwrap_or("item").to_string();
                    let path = format!("{prefix}::{name}");
                    out.push(Reach { path, hidden, target: Target::External(source, kind) });
                }
            }
        }
    }

    fn reach(&self, item: &Value, path: String, hidden: bool, depth: usize, out: &mut Vec<Reach>) {
        let hidden = hidden || is_hidden(item);
        if item["inner"].get("module").is_some() {
            self.walk(item, &path, hidden, depth + 1, out);
        }
        out.push(Reach { path, hidden, target: Target::Local(item["id"].as_u64().expect("an item's id")) });
    }

    fn push(&mut self, hidden: bool, group: &str, rank: Rank, text: String) {
        self.lines.insert(Line { hidden, group: group.to_string(), rank, text });
    }

    /// The snapshot's lines after the title: each reachable item, then the impls.
    fn render(mut self) -> String {
        let public: Vec<_> = self.public.iter().map(|(id, preferred)| (*id, preferred.clone())).collect();
        for (id, (path, hidden)) in public {
            self.render_item(self.item(&Value::from(id)), &path, hidden);
        }
        let krate = self.krate;
        for item in krate["index"].as_object().expect("the index").values() {
            if item["crate_id"] == 0 && item["inner"].get("impl").is_some() {
                self.render_impl(item);
            }
        }
        let (hidden, visible): (Vec<_>, Vec<_>) = self.lines.into_iter().partition(|line| line.hidden);
        let mut out = join(visible.into_iter().map(|line| line.text + "\n"), "");
        if !hidden.is_empty() {
            out += "\n# #[doc(hidden)]: no API for users, but what generated code relies on (weft::__private).\n";
            out += &join(hidden.into_iter().map(|line| format!("#[doc(hidden)] {}\n", line.text)), "");
        }
        out
    }

    fn render_item(&mut self, item: &'a Value, path: &str, hidden: bool) {
        let (kind, body) = inner_of(&item["inner"]);
        let (item_attrs, generics) = (attrs(item), &body["generics"]);
        let (params, clause) = (self.generic_params(generics), self.where_clause(self.predicates(generics)));
        // A member's name, whether it is hidden, and its attributes.
        let about = |member: &'a Value| (str_of(&member["name"]), hidden || is_hidden(member), attrs(member));
        let text = match kind {
            "module" => format!("pub mod {path}"),
            "struct" | "union" => {
                let shape = match &body["kind"] {
                    Value::String(unit) if unit == "unit" => ";".to_string(),
                    shape if shape.get("tuple").is_some() => self.tuple_fields(&shape["tuple"], "pub "),
                    shape => {
                        // A union has its fields where a struct has its kind.
                        let plain = if kind == "union" { body } else { &shape["plain"] };
                        let fields: Vec<_> = array(&plain["fields"]).iter().map(|f| self.item(f)).collect();
                        for field in fields {
                            let (name, hidden, attrs) = about(field);
                            let ty = self.ty(&field["inner"]["struct_field"]);
                            self.push(hidden, path, Rank::Field, format!("{attrs}pub {path}::{name}: {ty}"));
                        }
                        flag(&plain["has_stripped_fields"], " { /* private fields */ }").to_string()
                    }
                };
                format!("{item_attrs}pub {kind} {path}{params}{clause}{shape}")
            }
            "enum" => {
                let variants: Vec<_> = array(&body["variants"]).iter().map(|v| self.item(v)).collect();
                for variant in variants {
                    let (name, hidden, attrs) = about(variant);
                    let v = &variant["inner"]["variant"];
                    let fields = |fields: &Value| {
                        let fields = array(fields)
                            .iter()
                            .map(|f| format!("{}: {}", str_of(&self.item(f)["name"]), self.field_ty(f)));
                        format!(" {{ {} }}", join(fields, ", "))
                    };
                    let shape = match inner_of(&v["kind"]) {
                        ("tuple", ids) => self.tuple_fields(ids, ""),
                        ("struct", body) => fields(&body["fields"]),
                        _ => String::new(),
                    };
                    let discriminant = wrap(" = ", str_of(&v["discriminant"]["expr"]).to_string(), "");
                    self.push(hidden, path, Rank::Field, format!("{attrs}{path}::{name}{shape}{discriminant}"));
                }
                format!("{item_attrs}pub enum {path}{params}{clause}")
            }
            "trait" => {
                // The trait's parameters, so that its items' lines name them.
                let names = array(&generics["params"]).iter().map(|p| str_of(&p["name"]).to_string());
                let owner = format!("{path}{}", wrap("<", join(names, ", "), ">"));
                let members: Vec<_> = array(&body["items"]).iter().map(|i| self.item(i)).collect();
                for member in members {
                    let (name, hidden, attrs) = about(member);
                    let text = self.member(member, &format!("{owner}::{name}"), &[], "");
                    self.push(hidden, path, Rank::Member, format!("{attrs}{text}"));
                }
                let supertraits = wrap(": ", self.bounds(&body["bounds"]), "");
                let qualifiers = format!("{}{}", flag(&body["is_unsafe"], "unsafe "), flag(&body["is_auto"], "auto "));
                format!("{item_attrs}pub {qualifiers}trait {path}{params}{supertraits}{clause}")
            }
            "function" => format!("{item_attrs}pub {}", self.function(body, path, &[])),
            "constant" => {
                let value = value(&body["const"]["expr"]);
                format!("{item_attrs}pub const {path}: {}{value}", self.ty(&body["type"]))
            }
            "static" => {
                let mut_ = flag(&body["is_mutable"], "mut ");
                format!("{item_attrs}pub static {mut_}{path}: {}", self.ty(&body["type"]))
            }
            "type_alias" => format!("{item_attrs}pub type {path}{params}{clause} = {}", self.ty(&body["type"])),
            // rustdoc gives the rules with their bodies elided; one line of them, named by path.
            "macro" => {
                let rules = join(str_of(body).split_whitespace().map(String::from), " ");
                let name = str_of(&item["name"]);
                format!("#[macro_export] {}", rules.replacen(&format!("! {name} "), &format!("! {path} "), 1))
            }
            other => format!("pub {other} {path}"),
        };
        self.push(hidden, path, Rank::Item, text);
    }

    /// A trait's or an impl's associated item, named `path`. `outer` are the enclosing impl's
    /// bounds; `vis` is `pub ` in inherent impls.
    fn member(&self, item: &Value, path: &str, outer: &[String], vis: &str) -> String {
        let (kind, body) = inner_of(&item["inner"]);
        let ty = self.ty(&body["type"]);
        match kind {
            "function" => {
                // A trait's provided method: one with a default body.
                let provided = if vis.is_empty() { flag(&body["has_body"], " { .. }") } else { "" };
                format!("{vis}{}{provided}", self.function(body, path, outer))
            }
            "assoc_const" => format!("{vis}const {path}: {ty}{}", value(&body["value"])),
            "assoc_type" => {
                let generics = &body["generics"];
                let bounds = wrap(": ", self.bounds(&body["bounds"]), "");
                let clause = self.where_clause(self.predicates(generics));
                format!("{vis}type {path}{}{bounds}{clause}{}", self.generic_params(generics), wrap(" = ", ty, ""))
            }
            other => format!("{vis}{other} {path}"),
        }
    }

    /// An impl written in the crate (or by its derives), if it is part of the public API: every
    /// local item it names is reachable. Trait impls are one line; inherent impls, a line per item.
    fn render_impl(&mut self, item: &'a Value) {
        let body = &item["inner"]["impl"];
        let trait_ = &body["trait"];
        let trait_name = str_of(&trait_["path"]).rsplit("::").next().unwrap_or_default();
        if is_hidden(item)
            || !body["blanket_impl"].is_null()
            || (body["is_synthetic"] == true && !AUTO_TRAITS.contains(&trait_name))
        {
            return;
        }
        let mut named = Vec::new();
        local_ids(self.krate, &body["for"], &mut named);
        local_ids(self.krate, trait_, &mut named);
        if named.iter().any(|id| !self.public.contains_key(id)) {
            return;
        }
        // Listed under the type, or under the trait if the type is not ours, or under the first
        // of our items it names (`impl From<weft::Status> for std::io::Error`).
        let self_id = body["for"]["resolved_path"]["id"].as_u64().filter(|id| self.public.contains_key(id));
        let trait_id = trait_["id"].as_u64().filter(|id| self.public.contains_key(id));
        let Some((group, hidden)) = self_id.or(trait_id).or(named.first().copied()).map(|id| self.public[&id].clone())
        else {
            return;
        };
        let self_ty = self.ty(&body["for"]);
        if trait_.is_null() {
            // Inherent: the impl's bounds go into each item's where-clause, which needs them too.
            let outer = self.impl_bounds(&body["generics"]);
            let members: Vec<_> = array(&body["items"]).iter().map(|i| self.item(i)).collect();
            for member in members.into_iter().filter(|m| m["visibility"] == "public") {
                let path = format!("{self_ty}::{}", str_of(&member["name"]));
                let text = format!("{}{}", attrs(member), self.member(member, &path, &outer, "pub "));
                self.push(hidden || is_hidden(member), &group, Rank::Member, text);
            }
        } else {
            let qualifiers = flag(&body["is_unsafe"], "unsafe ");
            let not = flag(&body["is_negative"], "!");
            let params = self.generic_params(&body["generics"]);
            let clause = self.where_clause(self.predicates(&body["generics"]));
            let text = format!("{qualifiers}impl{params} {not}{} for {self_ty}{clause}", self.path(trait_));
            self.push(hidden, &group, Rank::Impl, text);
        }
    }

    /// `fn path<G>(params) -> R where …`, with its qualifiers.
    fn function(&self, f: &Value, path: &str, outer: &[String]) -> String {
        let header = &f["header"];
        let qualifiers = [("is_const", "const "), ("is_async", "async "), ("is_unsafe", "unsafe ")]
            .map(|(field, word)| flag(&header[field], word))
            .concat();
        let sig = &f["sig"];
        let params: Vec<_> = array(&sig["inputs"]).iter().map(|p| self.param(str_of(&p[0]), &p[1])).collect();
        let output = wrap(" -> ", self.ty(&sig["output"]), "");
        let predicates = outer.iter().cloned().chain(self.predicates(&f["generics"])).collect();
        let (generics, clause) = (self.generic_params(&f["generics"]), self.where_clause(predicates));
        let abi = abi(&header["abi"]);
        format!("{qualifiers}{abi}fn {path}{generics}({}){output}{clause}", params.join(", "))
    }

    /// A parameter, with `self`, `&self` and `&mut self` as written.
    fn param(&self, name: &str, ty: &Value) -> String {
        let reference = &ty["borrowed_ref"];
        match name {
            "self" if ty["generic"] == "Self" => "self".into(),
            "self" if reference["type"]["generic"] == "Self" => {
                let lifetime = wrap("", str_of(&reference["lifetime"]).to_string(), " ");
                format!("&{lifetime}{}self", flag(&reference["is_mutable"], "mut "))
            }
            _ => format!("{name}: {}", self.ty(ty)),
        }
    }

    /// `<'a, T: Bound = Default, const N: usize>`, without the parameters that stand for
    /// `impl Trait` arguments (the arguments show them).
    fn generic_params(&self, generics: &Value) -> String {
        let params = array(&generics["params"]).iter().filter(|p| p["kind"]["type"]["is_synthetic"] != true);
        wrap("<", join(params.map(|p| self.generic_param(p)), ", "), ">")
    }

    fn generic_param(&self, param: &Value) -> String {
        let name = str_of(&param["name"]);
        match inner_of(&param["kind"]) {
            ("lifetime", body) => format!("{name}{}", wrap(": ", lifetimes(&body["outlives"]), "")),
            ("type", body) => {
                let bounds = wrap(": ", self.bounds(&body["bounds"]), "");
                format!("{name}{bounds}{}", wrap(" = ", self.ty(&body["default"]), ""))
            }
            ("const", body) => {
                let default = wrap(" = ", str_of(&body["default"]).to_string(), "");
                format!("const {name}: {}{default}", self.ty(&body["type"]))
            }
            (other, _) => format!("{other} {name}"),
        }
    }

    /// An impl's bounds as where-predicates: `impl<T: Codec> X<T>` has `T: Codec`.
    fn impl_bounds(&self, generics: &Value) -> Vec<String> {
        let inline = array(&generics["params"]).iter().filter_map(|param| {
            let bounds = match inner_of(&param["kind"]) {
                ("type", body) => self.bounds(&body["bounds"]),
                ("lifetime", body) => lifetimes(&body["outlives"]),
                _ => String::new(),
            };
            (!bounds.is_empty()).then(|| format!("{}: {bounds}", str_of(&param["name"])))
        });
        inline.chain(self.predicates(generics)).collect()
    }

    fn predicates(&self, generics: &Value) -> Vec<String> {
        array(&generics["where_predicates"]).iter().map(|p| self.predicate(p)).collect()
    }

    fn predicate(&self, predicate: &Value) -> String {
        match inner_of(predicate) {
            ("bound_predicate", body) => {
                let hrtb = self.for_lifetimes(&body["generic_params"]);
                format!("{hrtb}{}: {}", self.ty(&body["type"]), self.bounds(&body["bounds"]))
            }
            ("lifetime_predicate", body) => format!("{}: {}", str_of(&body["lifetime"]), lifetimes(&body["outlives"])),
            ("eq_predicate", body) => format!("{} = {}", self.ty(&body["lhs"]), self.term(&body["rhs"])),
            (other, _) => format!("/* {other} */"),
        }
    }

    fn where_clause(&self, predicates: Vec<String>) -> String {
        wrap(" where ", predicates.join(", "), "")
    }

    /// `for<'a> ` of a higher-ranked bound, or nothing.
    fn for_lifetimes(&self, params: &Value) -> String {
        wrap("for<", join(array(params).iter().map(|p| self.generic_param(p)), ", "), "> ")
    }

    fn bounds(&self, bounds: &Value) -> String {
        join(array(bounds).iter().map(|b| self.bound(b)), " + ")
    }

    fn bound(&self, bound: &Value) -> String {
        match inner_of(bound) {
            ("trait_bound", body) => {
                let modifier = match str_of(&body["modifier"]) {
                    "maybe" => "?",
                    "maybe_const" => "[const] ",
                    _ => "",
                };
                format!("{}{modifier}{}", self.for_lifetimes(&body["generic_params"]), self.path(&body["trait"]))
            }
            ("outlives", lifetime) => str_of(lifetime).into(),
            ("use", args) => format!("use<{}>", join(array(args).iter().map(|a| str_of(inner_of(a).1).into()), ", ")),
            (other, _) => format!("/* {other} */"),
        }
    }

    /// A type of rustdoc's `Type` enum, back in Rust syntax; nothing for none.
    fn ty(&self, ty: &Value) -> String {
        let (kind, body) = inner_of(ty);
        match kind {
            "" => String::new(),
            "resolved_path" => self.path(body),
            "generic" | "primitive" => str_of(body).into(),
            "infer" => "_".into(),
            "tuple" if array(body).len() == 1 => format!("({},)", self.ty(&body[0])),
            "tuple" => format!("({})", join(array(body).iter().map(|t| self.ty(t)), ", ")),
            "slice" => format!("[{}]", self.ty(body)),
            "array" => format!("[{}; {}]", self.ty(&body["type"]), str_of(&body["len"])),
            "impl_trait" => format!("impl {}", self.bounds(body)),
            "dyn_trait" => {
                let traits = array(&body["traits"])
                    .iter()
                    .map(|t| format!("{}{}", self.for_lifetimes(&t["generic_params"]), self.path(&t["trait"])));
                let lifetime = body["lifetime"].as_str().map(String::from);
                format!("dyn {}", join(traits.chain(lifetime), " + "))
            }
            "borrowed_ref" | "raw_pointer" => {
                let pointee = self.ty(&body["type"]);
                // `&(dyn A + B)`: without parentheses the `+` would bind to the reference.
                let compound = pointee.contains(" + ") && (pointee.starts_with("dyn ") || pointee.starts_with("impl "));
                let pointee = if compound { format!("({pointee})") } else { pointee };
                match (kind, body["is_mutable"] == true) {
                    ("raw_pointer", true) => format!("*mut {pointee}"),
                    ("raw_pointer", false) => format!("*const {pointee}"),
                    (_, mutable) => {
                        let lifetime = wrap("", str_of(&body["lifetime"]).to_string(), " ");
                        format!("&{lifetime}{}{pointee}", if mutable { "mut " } else { "" })
                    }
                }
            }
            "function_pointer" => {
                let sig = &body["sig"];
                let params = join(array(&sig["inputs"]).iter().map(|p| self.ty(&p[1])), ", ");
                let output = wrap(" -> ", self.ty(&sig["output"]), "");
                let unsafe_ = flag(&body["header"]["is_unsafe"], "unsafe ");
                let (hrtb, abi) = (self.for_lifetimes(&body["generic_params"]), abi(&body["header"]["abi"]));
                format!("{hrtb}{unsafe_}{abi}fn({params}){output}")
            }
            "qualified_path" => {
                let name = format!("{}{}", str_of(&body["name"]), self.generic_args(&body["args"]));
                let self_ty = self.ty(&body["self_type"]);
                match &body["trait"] {
                    Value::Null => format!("{self_ty}::{name}"),
                    // `Self::Item`: what a trait's own items write, and unambiguous there.
                    _ if self_ty == "Self" => format!("Self::{name}"),
                    trait_ => format!("<{self_ty} as {}>::{name}", self.path(trait_)),
                }
            }
            other => format!("/* {other} */"),
        }
    }

    /// A path to an item with its generic arguments: ours by their preferred path, others' by the
    /// path rustdoc records for them, and anything else as written.
    fn path(&self, path: &Value) -> String {
        let id = &path["id"];
        let name = match id.as_u64().and_then(|id| self.public.get(&id)) {
            Some((public, _)) => public.clone(),
            None => Some(path_of(&self.krate["paths"][id_key(id)]["path"]))
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| str_of(&path["path"]).into()),
        };
        name + &self.generic_args(&path["args"])
    }

    fn generic_args(&self, args: &Value) -> String {
        match inner_of(args) {
            ("angle_bracketed", body) => {
                let args = array(&body["args"]).iter().map(|arg| match inner_of(arg) {
                    ("lifetime", lifetime) => str_of(lifetime).into(),
                    ("type", ty) => self.ty(ty),
                    ("const", constant) => str_of(&constant["expr"]).into(),
                    _ => "_".into(),
                });
                let constraints = array(&body["constraints"]).iter().map(|constraint| {
                    let name = format!("{}{}", str_of(&constraint["name"]), self.generic_args(&constraint["args"]));
                    match inner_of(&constraint["binding"]) {
                        ("equality", term) => format!("{name} = {}", self.term(term)),
                        (_, bounds) => format!("{name}: {}", self.bounds(bounds)),
                    }
                });
                wrap("<", join(args.chain(constraints), ", "), ">")
            }
            ("parenthesized", body) => {
                let inputs = join(array(&body["inputs"]).iter().map(|t| self.ty(t)), ", ");
                format!("({inputs}){}", wrap(" -> ", self.ty(&body["output"]), ""))
            }
            _ => String::new(),
        }
    }

    fn term(&self, term: &Value) -> String {
        match inner_of(term) {
            ("type", ty) => self.ty(ty),
            (_, constant) => str_of(&constant["expr"]).into(),
        }
    }

    /// `(pub A, _, pub C)`: a tuple's fields, `_` for those not public.
    fn tuple_fields(&self, ids: &Value, vis: &str) -> String {
        let fields =
            array(ids).iter().map(|f| if f.is_null() { "_".into() } else { format!("{vis}{}", self.field_ty(f)) });
        format!("({})", join(fields, ", "))
    }

    fn field_ty(&self, field: &Value) -> String {
        self.ty(&self.item(field)["inner"]["struct_field"])
    }
}

/// The ids of local items a piece of JSON names through paths (`{"path": …, "id": …}`).
fn local_ids(krate: &Value, value: &Value, out: &mut Vec<u64>) {
    match value {
        Value::Object(map) => {
            if let (Some(Value::String(_)), Some(id)) = (map.get("path"), map.get("id").and_then(Value::as_u64))
                && krate["index"][id.to_string()]["crate_id"] == 0
            {
                out.push(id);
            }
            map.values().for_each(|v| local_ids(krate, v, out));
        }
        Value::Array(values) => values.iter().for_each(|v| local_ids(krate, v, out)),
        _ => {}
    }
}

static NULL: Value = Value::Null;

/// The kind and body of an externally tagged enum: `{"kind": body}`, or a bare `"kind"`.
fn inner_of(value: &Value) -> (&str, &Value) {
    match value {
        Value::Object(map) if map.len() == 1 => map.iter().next().map(|(k, v)| (k.as_str(), v)).expect("one entry"),
        Value::String(kind) => (kind.as_str(), &NULL),
        _ => ("", &NULL),
    }
}

fn array(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn str_of(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// The index is keyed by ids as strings.
fn id_key(id: &Value) -> String {
    id.as_u64().map(|id| id.to_string()).unwrap_or_default()
}

fn join(items: impl Iterator<Item = String>, separator: &str) -> String {
    items.collect::<Vec<_>>().join(separator)
}

/// `text` between `before` and `after`, or nothing if `text` is empty: `wrap(": ", bounds, "")`.
fn wrap(before: &str, text: String, after: &str) -> String {
    if text.is_empty() { text } else { format!("{before}{text}{after}") }
}

/// `word` if a JSON flag is set, else nothing.
fn flag(value: &Value, word: &'static str) -> &'static str {
    if *value == true { word } else { "" }
}

/// ` = value` of a constant, or nothing: for `_`, which stands for a value rustdoc did not
/// evaluate, and for long values (`OPTIONS_PROTO` is a whole `.proto` file, whose changes its own
/// file shows).
fn value(expr: &Value) -> String {
    let expr = str_of(expr);
    if expr == "_" || expr.len() > 80 { String::new() } else { format!(" = {expr}") }
}

/// `a::b::C` of rustdoc's path segments, or nothing.
fn path_of(segments: &Value) -> String {
    join(array(segments).iter().map(|s| str_of(s).to_string()), "::")
}

/// `'a + 'b` of a list of lifetimes.
fn lifetimes(outlives: &Value) -> String {
    join(array(outlives).iter().map(|l| str_of(l).to_string()), " + ")
}

fn is_hidden(item: &Value) -> bool {
    array(&item["attrs"]).iter().any(|a| a["other"] == "#[doc(hidden)]")
}

/// The attributes that change what users may rely on, as a prefix.
fn attrs(item: &Value) -> String {
    let deprecated = if item["deprecation"].is_null() { "" } else { "#[deprecated] " };
    let non_exhaustive = array(&item["attrs"]).iter().any(|a| a == "non_exhaustive");
    format!("{deprecated}{}", if non_exhaustive { "#[non_exhaustive] " } else { "" })
}

/// `extern "C" ` and the like; nothing for Rust's own ABI.
fn abi(abi: &Value) -> String {
    match inner_of(abi) {
        ("Rust" | "", _) => String::new(),
        ("other", name) => format!("extern \"{}\" ", str_of(name)),
        (name, body) => {
            let name = if name == "c" { "C" } else { name };
            format!("extern \"{name}{}\" ", flag(&body["unwind"], "-unwind"))
        }
    }
}
