//! Generates `core/src/codec/generated.rs` from `spec/amqp0-9-1.extended.xml` plus the
//! RabbitMQ-only methods in `spec/rabbitmq-extensions.xml`.
//!
//! `cargo run -p warren-codegen` rewrites the file; `cargo run -p warren-codegen -- --check`
//! exits non-zero if the checked-in file differs from what this generator produces (CI runs
//! it). The output is piped through `rustfmt --edition 2021`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// Classes that get method structs, in spec order of appearance.
const CLASSES: &[&str] = &[
    "connection",
    "channel",
    "exchange",
    "queue",
    "basic",
    "confirm",
    "tx",
];

/// Field names the generated decoders use for their own locals.
const RESERVED_LOCALS: &[&str] = &["r", "out", "self"];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ty {
    Octet,
    Short,
    Long,
    LongLong,
    Bit,
    ShortStr,
    LongStr,
    Timestamp,
    Table,
}

impl Ty {
    const BASE: [&'static str; 9] = [
        "octet",
        "short",
        "long",
        "longlong",
        "bit",
        "shortstr",
        "longstr",
        "timestamp",
        "table",
    ];

    fn parse(s: &str) -> Option<Ty> {
        Some(match s {
            "octet" => Ty::Octet,
            "short" => Ty::Short,
            "long" => Ty::Long,
            "longlong" => Ty::LongLong,
            "bit" => Ty::Bit,
            "shortstr" => Ty::ShortStr,
            "longstr" => Ty::LongStr,
            "timestamp" => Ty::Timestamp,
            "table" => Ty::Table,
            _ => return None,
        })
    }

    fn rust(self) -> &'static str {
        match self {
            Ty::Octet => "u8",
            Ty::Short => "u16",
            Ty::Long => "u32",
            Ty::LongLong | Ty::Timestamp => "u64",
            Ty::Bit => "bool",
            Ty::ShortStr => "ShortStr",
            Ty::LongStr => "LongStr",
            Ty::Table => "FieldTable",
        }
    }

    /// Fixed wire size, or None for variable-size types (bits are handled per group).
    fn fixed_size(self) -> Option<usize> {
        match self {
            Ty::Octet => Some(1),
            Ty::Short => Some(2),
            Ty::Long => Some(4),
            Ty::LongLong | Ty::Timestamp => Some(8),
            Ty::Bit | Ty::ShortStr | Ty::LongStr | Ty::Table => None,
        }
    }
}

struct Field {
    spec_name: String,
    name: String,
    ty: Ty,
    domain: Option<String>,
    reserved: bool,
}

struct MethodDef {
    class: String,
    class_id: u16,
    name: String,
    method_id: u16,
    content: bool,
    label: Option<String>,
    fields: Vec<Field>,
}

impl MethodDef {
    fn struct_name(&self) -> String {
        format!("{}{}", camel(&self.class), camel(&self.name))
    }

    fn full_name(&self) -> String {
        format!("{}.{}", self.class, self.name)
    }
}

struct Constant {
    name: String,
    value: u32,
    class: Option<String>,
}

fn camel(s: &str) -> String {
    s.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(first) => first.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

fn field_ident(spec_name: &str) -> String {
    let name = spec_name.replace('-', "_");
    match name.as_str() {
        "type" => "kind".to_string(),
        _ => name,
    }
}

/// Follows `domain -> type` links down to one of the spec's base types.
fn resolve<'a>(domains: &'a HashMap<String, String>, mut name: &'a str) -> Result<Ty, String> {
    for _ in 0..16 {
        match domains.get(name) {
            Some(next) if next != name => name = next,
            _ => return Ty::parse(name).ok_or_else(|| format!("unknown domain {name}")),
        }
    }
    Err(format!("domain cycle at {name}"))
}

struct Spec {
    constants: Vec<Constant>,
    methods: Vec<MethodDef>,
    classes: Vec<(String, u16)>,
}

/// Parses the spec, then merges the methods of `extensions` (same schema) into the spec's
/// classes of the same name, after the spec's own methods.
fn parse(xml: &str, extensions: &str) -> Result<Spec, String> {
    let mut spec = parse_one(xml)?;
    let ext = parse_one(extensions)?;
    for m in ext.methods {
        let at = spec
            .methods
            .iter()
            .rposition(|s| s.class == m.class)
            .ok_or_else(|| format!("extension class {} is not in the spec", m.class))?;
        if spec
            .methods
            .iter()
            .any(|s| s.class_id == m.class_id && s.method_id == m.method_id)
        {
            return Err(format!(
                "extension method {} already in the spec",
                m.full_name()
            ));
        }
        spec.methods.insert(at + 1, m);
    }
    Ok(spec)
}

fn parse_one(xml: &str) -> Result<Spec, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("spec XML: {e}"))?;
    let root = doc.root_element();
    let mut domains: HashMap<String, String> = Ty::BASE
        .iter()
        .map(|t| (t.to_string(), t.to_string()))
        .collect();
    let mut constants = Vec::new();
    for n in root.children().filter(|n| n.is_element()) {
        match n.tag_name().name() {
            "domain" => {
                let name = n.attribute("name").ok_or("domain without name")?;
                let ty = n.attribute("type").ok_or("domain without type")?;
                domains.insert(name.to_string(), ty.to_string());
            }
            "constant" => {
                let name = n.attribute("name").ok_or("constant without name")?;
                let value = n
                    .attribute("value")
                    .ok_or("constant without value")?
                    .parse::<u32>()
                    .map_err(|e| format!("constant {name}: {e}"))?;
                constants.push(Constant {
                    name: name.to_string(),
                    value,
                    class: n.attribute("class").map(str::to_string),
                });
            }
            _ => {}
        }
    }
    let mut methods = Vec::new();
    let mut classes = Vec::new();
    for class in root.children().filter(|n| n.has_tag_name("class")) {
        let class_name = class.attribute("name").ok_or("class without name")?;
        if !CLASSES.contains(&class_name) {
            continue;
        }
        let class_id: u16 = class
            .attribute("index")
            .ok_or("class without index")?
            .parse()
            .map_err(|e| format!("class {class_name}: {e}"))?;
        classes.push((class_name.to_string(), class_id));
        for m in class.children().filter(|n| n.has_tag_name("method")) {
            let name = m.attribute("name").ok_or("method without name")?;
            let method_id: u16 = m
                .attribute("index")
                .ok_or("method without index")?
                .parse()
                .map_err(|e| format!("method {class_name}.{name}: {e}"))?;
            let mut fields = Vec::new();
            for f in m.children().filter(|n| n.has_tag_name("field")) {
                let spec_name = f.attribute("name").ok_or("field without name")?;
                let domain = f.attribute("domain");
                let ty = match (f.attribute("type"), domain) {
                    (Some(t), _) => resolve(&domains, t)?,
                    (None, Some(d)) => resolve(&domains, d)?,
                    (None, None) => {
                        return Err(format!("{class_name}.{name}.{spec_name}: no type"))
                    }
                };
                let ident = field_ident(spec_name);
                if RESERVED_LOCALS.contains(&ident.as_str()) {
                    return Err(format!("field name {ident} clashes with generated code"));
                }
                fields.push(Field {
                    spec_name: spec_name.to_string(),
                    name: ident,
                    ty,
                    domain: domain.map(str::to_string),
                    reserved: f.attribute("reserved") == Some("1"),
                });
            }
            methods.push(MethodDef {
                class: class_name.to_string(),
                class_id,
                name: name.to_string(),
                method_id,
                content: m.attribute("content") == Some("1"),
                label: m.attribute("label").map(str::to_string),
                fields,
            });
        }
    }
    Ok(Spec {
        constants,
        methods,
        classes,
    })
}

/// A method's fields grouped for the wire: runs of bits share octets (at most 8 per octet).
enum Item<'a> {
    Single(&'a Field),
    Bits(Vec<&'a Field>),
}

fn items(fields: &[Field]) -> Vec<Item<'_>> {
    let mut out: Vec<Item<'_>> = Vec::new();
    for f in fields {
        if f.ty == Ty::Bit {
            if let Some(Item::Bits(group)) = out.last_mut() {
                if group.len() < 8 {
                    group.push(f);
                    continue;
                }
            }
            out.push(Item::Bits(vec![f]));
        } else {
            out.push(Item::Single(f));
        }
    }
    out
}

/// Frame types and the frame-end octet are u8, frame-min-size u32, reply codes u16.
fn constant_type(c: &Constant) -> &'static str {
    match c.name.as_str() {
        _ if c.class.is_some() => "u16",
        "frame-min-size" => "u32",
        n if n.starts_with("frame-") => "u8",
        _ => "u16",
    }
}

fn generate(spec: &Spec) -> String {
    let mut s = String::new();
    let w = &mut s;
    macro_rules! out {
        ($($arg:tt)*) => { writeln!(w, $($arg)*).unwrap() };
    }
    out!("// @generated by warren-codegen from spec/amqp0-9-1.extended.xml and");
    out!("// spec/rabbitmq-extensions.xml. DO NOT EDIT.");
    out!("// Regenerate with `cargo run -p warren-codegen`; CI checks it with");
    out!("// `cargo run -p warren-codegen -- --check`.");
    out!();
    out!("//! AMQP 0-9-1 methods (generated from the spec's class reference): one struct per");
    out!("//! method, the [`Method`] enum and the spec's constants.");
    out!("//!");
    out!("//! Arguments are encoded in spec order; consecutive `bit` fields share an octet, first");
    out!("//! field in the least significant bit (AMQP 0-9-1 §4.2.5.2).");
    out!();
    out!("use alloc::vec::Vec;");
    out!();
    out!("use bytes::Bytes;");
    out!();
    out!("use super::reader::Reader;");
    out!("use super::table::FieldTable;");
    out!("use super::writer::{{longstr_len, put_longstr, put_shortstr, put_table, put_u16, put_u32, put_u64, put_u8, shortstr_len, table_len}};");
    out!("use super::{{DecodeError, LongStr, ShortStr}};");
    out!();

    // Constants.
    for c in &spec.constants {
        let ident = c.name.replace('-', "_").to_uppercase();
        match &c.class {
            Some(class) => out!("/// Spec constant `{}` ({class}).", c.name),
            None => out!("/// Spec constant `{}`.", c.name),
        }
        out!("pub const {ident}: {} = {};", constant_type(c), c.value);
    }
    out!();
    out!("/// The reply code's name as RabbitMQ writes it at the start of reply texts");
    out!("/// (`NOT_FOUND - no queue 'x' in vhost '/'`).");
    out!("pub fn reply_code_name(code: u16) -> Option<&'static str> {{");
    out!("match code {{");
    for c in spec.constants.iter().filter(|c| constant_type(c) == "u16") {
        let ident = c.name.replace('-', "_").to_uppercase();
        out!("{} => Some(\"{ident}\"),", c.value);
    }
    out!("_ => None,");
    out!("}}");
    out!("}}");
    out!();
    out!("/// True for reply codes the spec classes as hard errors (they close the connection);");
    out!("/// soft errors close only the channel.");
    out!("pub fn is_hard_error(code: u16) -> bool {{");
    let hard: Vec<String> = spec
        .constants
        .iter()
        .filter(|c| c.class.as_deref() == Some("hard-error"))
        .map(|c| c.value.to_string())
        .collect();
    out!("matches!(code, {})", hard.join(" | "));
    out!("}}");
    out!();
    out!("/// Class ids (the `index` of each `<class>`).");
    out!("pub mod class {{");
    for (name, id) in &spec.classes {
        out!("pub const {}: u16 = {id};", name.to_uppercase());
    }
    out!("}}");
    out!();

    // Structs.
    for m in &spec.methods {
        let sname = m.struct_name();
        match &m.label {
            Some(label) => out!(
                "/// `{}` ({}.{}): {label}.",
                m.full_name(),
                m.class_id,
                m.method_id
            ),
            None => out!("/// `{}` ({}.{}).", m.full_name(), m.class_id, m.method_id),
        }
        if m.content {
            out!("///");
            out!("/// Carries content: a content header and body frames follow it.");
        }
        out!("#[derive(Clone, Debug, Default, PartialEq)]");
        if m.fields.is_empty() {
            out!("pub struct {sname};");
        } else {
            out!("pub struct {sname} {{");
            for f in &m.fields {
                let mut doc = format!("`{}`", f.spec_name);
                if let Some(d) = &f.domain {
                    if d != &f.spec_name && Ty::parse(d).is_none() {
                        let _ = write!(doc, ", domain `{d}`");
                    }
                }
                if f.reserved {
                    doc.push_str(", reserved");
                }
                out!("/// {doc}.");
                out!("pub {}: {},", f.name, f.ty.rust());
            }
            out!("}}");
        }
        out!();
        out!("impl {sname} {{");
        out!("pub const CLASS_ID: u16 = {};", m.class_id);
        out!("pub const METHOD_ID: u16 = {};", m.method_id);
        out!("pub const NAME: &'static str = \"{}\";", m.full_name());
        out!();
        // decode
        let r = if m.fields.is_empty() { "_r" } else { "r" };
        out!("#[inline]");
        out!("pub(crate) fn decode_args({r}: &mut Reader<'_>) -> Result<Self, DecodeError> {{");
        for (gi, item) in items(&m.fields).iter().enumerate() {
            match item {
                Item::Single(f) => {
                    let call = match f.ty {
                        Ty::Octet => "u8",
                        Ty::Short => "u16",
                        Ty::Long => "u32",
                        Ty::LongLong | Ty::Timestamp => "u64",
                        Ty::ShortStr => "shortstr",
                        Ty::LongStr => "longstr",
                        Ty::Table => "table",
                        Ty::Bit => unreachable!(),
                    };
                    out!("let {} = r.{call}()?;", f.name);
                }
                Item::Bits(group) => {
                    out!("let bits_{gi} = r.u8()?;");
                    for (i, f) in group.iter().enumerate() {
                        out!("let {} = bits_{gi} & {:#04x} != 0;", f.name, 1u8 << i);
                    }
                }
            }
        }
        if m.fields.is_empty() {
            out!("Ok(Self)");
        } else {
            let names: Vec<&str> = m.fields.iter().map(|f| f.name.as_str()).collect();
            out!("Ok(Self {{ {} }})", names.join(", "));
        }
        out!("}}");
        out!();
        // encode
        let o = if m.fields.is_empty() { "_out" } else { "out" };
        out!("#[inline]");
        out!("pub(crate) fn encode_args(&self, {o}: &mut Vec<u8>) {{");
        for item in items(&m.fields) {
            match item {
                Item::Single(f) => {
                    let n = &f.name;
                    match f.ty {
                        Ty::Octet => out!("put_u8(out, self.{n});"),
                        Ty::Short => out!("put_u16(out, self.{n});"),
                        Ty::Long => out!("put_u32(out, self.{n});"),
                        Ty::LongLong | Ty::Timestamp => out!("put_u64(out, self.{n});"),
                        Ty::ShortStr => out!("put_shortstr(out, &self.{n});"),
                        Ty::LongStr => out!("put_longstr(out, &self.{n});"),
                        Ty::Table => out!("put_table(out, &self.{n});"),
                        Ty::Bit => unreachable!(),
                    }
                }
                Item::Bits(group) => {
                    let parts: Vec<String> = group
                        .iter()
                        .enumerate()
                        .map(|(i, f)| {
                            if i == 0 {
                                format!("u8::from(self.{})", f.name)
                            } else {
                                format!("(u8::from(self.{}) << {i})", f.name)
                            }
                        })
                        .collect();
                    out!("put_u8(out, {});", parts.join(" | "));
                }
            }
        }
        out!("}}");
        out!();
        // length
        let mut fixed = 0usize;
        let mut dynamic = Vec::new();
        for item in items(&m.fields) {
            match item {
                Item::Bits(_) => fixed += 1,
                Item::Single(f) => match f.ty.fixed_size() {
                    Some(n) => fixed += n,
                    None => dynamic.push(match f.ty {
                        Ty::ShortStr => format!("shortstr_len(&self.{})", f.name),
                        Ty::LongStr => format!("longstr_len(&self.{})", f.name),
                        Ty::Table => format!("table_len(&self.{})", f.name),
                        _ => unreachable!(),
                    }),
                },
            }
        }
        if fixed > 0 || dynamic.is_empty() {
            dynamic.push(fixed.to_string());
        }
        out!("/// Bytes the arguments take on the wire.");
        out!("#[inline]");
        out!("pub fn args_len(&self) -> usize {{");
        out!("{}", dynamic.join(" + "));
        out!("}}");
        out!("}}");
        out!();
        out!("impl From<{sname}> for Method {{");
        out!("#[inline]");
        out!("fn from(m: {sname}) -> Method {{");
        out!("Method::{sname}(m)");
        out!("}}");
        out!("}}");
        out!();
    }

    // Method enum.
    out!(
        "/// Every method of classes connection, channel, exchange, queue, basic, confirm and tx."
    );
    out!("#[derive(Clone, Debug, PartialEq)]");
    out!("pub enum Method {{");
    for m in &spec.methods {
        out!("{0}({0}),", m.struct_name());
    }
    out!("}}");
    out!();
    out!("impl Method {{");
    out!("/// Decodes a method frame payload: class id, method id, arguments. Shortstrs and");
    out!("/// longstrs share `payload`'s buffer. Bytes after the last argument are an error.");
    out!("pub fn decode(payload: &Bytes) -> Result<Method, DecodeError> {{");
    out!("let mut r = Reader::from_bytes(payload);");
    out!("let class_id = r.u16()?;");
    out!("let method_id = r.u16()?;");
    out!("let method = match (class_id, method_id) {{");
    for m in &spec.methods {
        out!(
            "({}, {}) => Method::{2}({2}::decode_args(&mut r)?),",
            m.class_id,
            m.method_id,
            m.struct_name()
        );
    }
    out!("_ => return Err(DecodeError::UnknownMethod {{ class_id, method_id }}),");
    out!("}};");
    out!("if !r.is_empty() {{");
    out!("return Err(DecodeError::TrailingBytes);");
    out!("}}");
    out!("Ok(method)");
    out!("}}");
    out!();
    out!("/// Appends class id, method id and arguments (a method frame's payload).");
    out!("pub fn encode(&self, out: &mut Vec<u8>) {{");
    out!("put_u16(out, self.class_id());");
    out!("put_u16(out, self.method_id());");
    out!("match self {{");
    for m in &spec.methods {
        out!("Method::{}(m) => m.encode_args(out),", m.struct_name());
    }
    out!("}}");
    out!("}}");
    out!();
    out!("/// Bytes [`Method::encode`] writes.");
    out!("pub fn encoded_len(&self) -> usize {{");
    out!("4 + match self {{");
    for m in &spec.methods {
        out!("Method::{}(m) => m.args_len(),", m.struct_name());
    }
    out!("}}");
    out!("}}");
    out!();
    for (fname, doc, ty, f) in [
        (
            "class_id",
            "The class id.",
            "u16",
            &(|m: &MethodDef| m.class_id.to_string()) as &dyn Fn(&MethodDef) -> String,
        ),
        (
            "method_id",
            "The method id within its class.",
            "u16",
            &|m| m.method_id.to_string(),
        ),
        (
            "name",
            "The spec name, e.g. `\"basic.publish\"`.",
            "&'static str",
            &|m| format!("\"{}\"", m.full_name()),
        ),
    ] {
        out!("/// {doc}");
        out!("pub fn {fname}(&self) -> {ty} {{");
        out!("match self {{");
        for m in &spec.methods {
            out!("Method::{}(_) => {},", m.struct_name(), f(m));
        }
        out!("}}");
        out!("}}");
        out!();
    }
    out!("/// True for methods followed by content (a header frame and body frames).");
    out!("pub fn has_content(&self) -> bool {{");
    let content: Vec<String> = spec
        .methods
        .iter()
        .filter(|m| m.content)
        .map(|m| format!("Method::{}(_)", m.struct_name()))
        .collect();
    out!("matches!(self, {})", content.join(" | "));
    out!("}}");
    out!("}}");
    out!();
    out!("/// The spec name of a method, e.g. `method_name(60, 40) == Some(\"basic.publish\")`.");
    out!("pub fn method_name(class_id: u16, method_id: u16) -> Option<&'static str> {{");
    out!("Some(match (class_id, method_id) {{");
    for m in &spec.methods {
        out!(
            "({}, {}) => \"{}\",",
            m.class_id,
            m.method_id,
            m.full_name()
        );
    }
    out!("_ => return None,");
    out!("}})");
    out!("}}");
    out!();
    generate_strategies(w, spec);
    s
}

/// proptest strategies for every method, for the codec's round-trip tests.
fn generate_strategies(w: &mut String, spec: &Spec) {
    macro_rules! out {
        ($($arg:tt)*) => { writeln!(w, $($arg)*).unwrap() };
    }
    out!("/// proptest strategies producing every method with arbitrary arguments.");
    out!("#[cfg(test)]");
    out!("pub(crate) mod strategies {{");
    out!("use super::*;");
    out!("use alloc::vec;");
    out!("use super::super::tests::{{arb_longstr, arb_shortstr, arb_table}};");
    out!("use proptest::prelude::*;");
    out!();
    out!("pub(crate) fn arb_method() -> BoxedStrategy<Method> {{");
    out!("prop_oneof![");
    for m in &spec.methods {
        let sname = m.struct_name();
        if m.fields.is_empty() {
            out!("Just(Method::from({sname})),");
            continue;
        }
        let strategies: Vec<&str> = m
            .fields
            .iter()
            .map(|f| match f.ty {
                Ty::Octet => "any::<u8>()",
                Ty::Short => "any::<u16>()",
                Ty::Long => "any::<u32>()",
                Ty::LongLong | Ty::Timestamp => "any::<u64>()",
                Ty::Bit => "any::<bool>()",
                Ty::ShortStr => "arb_shortstr()",
                Ty::LongStr => "arb_longstr()",
                Ty::Table => "arb_table()",
            })
            .collect();
        let names: Vec<&str> = m.fields.iter().map(|f| f.name.as_str()).collect();
        out!(
            "({},).prop_map(|({},)| Method::from({sname} {{ {} }})),",
            strategies.join(", "),
            names.join(", "),
            names.join(", ")
        );
    }
    out!("]");
    out!(".boxed()");
    out!("}}");
    out!("}}");
}

fn rustfmt(src: &str, dir: &Path) -> Result<String, String> {
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2021", "--emit", "stdout"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run rustfmt: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let input = src.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(|e| format!("rustfmt: {e}"))?;
    writer
        .join()
        .map_err(|_| "rustfmt writer thread panicked".to_string())?
        .map_err(|e| format!("writing to rustfmt: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "rustfmt failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8(output.stdout).map_err(|e| format!("rustfmt output: {e}"))
}

fn run() -> Result<ExitCode, String> {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => {
            return Err(format!(
                "unknown argument {other:?}; usage: warren-codegen [--check]"
            ))
        }
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?
        .to_path_buf();
    let spec_path = root.join("spec/amqp0-9-1.extended.xml");
    let out_path = root.join("core/src/codec/generated.rs");
    let xml = std::fs::read_to_string(&spec_path)
        .map_err(|e| format!("reading {}: {e}", spec_path.display()))?;
    let ext_path = root.join("spec/rabbitmq-extensions.xml");
    let ext = std::fs::read_to_string(&ext_path)
        .map_err(|e| format!("reading {}: {e}", ext_path.display()))?;
    let spec = parse(&xml, &ext)?;
    let code = rustfmt(&generate(&spec), out_path.parent().ok_or("no parent")?)?;
    if check {
        let current = std::fs::read_to_string(&out_path).unwrap_or_default();
        if current != code {
            eprintln!(
                "error: {} is out of date with {}; run `cargo run -p warren-codegen` and commit the result",
                out_path.display(),
                spec_path.display()
            );
            return Ok(ExitCode::FAILURE);
        }
        println!("{} is up to date", out_path.display());
    } else {
        std::fs::write(&out_path, code)
            .map_err(|e| format!("writing {}: {e}", out_path.display()))?;
        println!(
            "wrote {} ({} methods)",
            out_path.display(),
            spec.methods.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
