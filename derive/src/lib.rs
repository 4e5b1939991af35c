//! The derives behind labrun's op contract (`lab_ops::params`).
//!
//! `#[derive(Params)]` turns a struct into an op's parameters: each field is one parameter,
//! named once (the field's name), typed by the field's Rust type, documented by its doc
//! comment, with its default and its value rules in `#[param(…)]`. Rules between fields go
//! in `#[params(…)]` on the struct, and name fields that the compiler checks exist.
//!
//! ```text
//! /// The parameters of `filter.take` (a complete op, compiled as a doc test, is in
//! /// `lab_ops::params`).
//! #[derive(Params)]
//! pub struct TakeParams {
//!     /// the dataset
//!     data: DatasetDir,
//!     /// rows to keep
//!     count: usize,
//!     /// random seed
//!     #[param(default = 0)]
//!     seed: i64,
//! }
//! ```
//!
//! Field options: `default = EXPR` (a value of the field's type; integer literals serve
//! integer and float fields, string literals `String` fields),
//! `min = N`, `max = N` (inclusive), `gt = N`, `lt = N` (strict), `positive` (`gt = 0`),
//! `non_empty`, `one_of = ["a", "b"]` (strings), `max_bytes = N` (a file of at most N
//! bytes, checked before it is read or hashed), and `flatten` for a field whose type is
//! itself `Params` (shared groups such as the training settings), optionally with
//! `defaults(name = EXPR, …)` to give its parameters this op's defaults.
//!
//! Struct options: `less(low, high)`, `same_length(a, b)`, `same_length_or_empty(a, b)` (b
//! may be empty), `within(param, input = "fact")`, `agree(a = "fact", b = "fact")`, and
//! `rules = path` (a `fn() -> Vec<Check>` for rules the others cannot say).
//!
//! `#[derive(Choice)]` turns a fieldless `Copy` enum into a string parameter with fixed
//! options (`lab_ops::params::Options`, with `FromStr` and `Display`): each variant is its
//! snake_case name (or `#[choice(name = "…")]`), and `check` reports any other string at its
//! argument before the run.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Expr, Fields, Ident, LitStr, parse_macro_input};

#[proc_macro_derive(Params, attributes(param, params))]
pub fn derive_params(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    params(&input).unwrap_or_else(syn::Error::into_compile_error).into()
}

#[proc_macro_derive(Choice, attributes(choice))]
pub fn derive_choice(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    choice(&input).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// A field's name as the `.lab` file writes it (`r#type` is `type`).
fn param_name(ident: &Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#").map(str::to_string).unwrap_or(s)
}

/// The doc comment, its lines joined by spaces.
fn doc_of(attrs: &[syn::Attribute]) -> Option<String> {
    let mut lines = Vec::new();
    for a in attrs {
        if a.path().is_ident("doc")
            && let syn::Meta::NameValue(nv) = &a.meta
            && let Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) = &nv.value
        {
            lines.push(s.value().trim().to_string());
        }
    }
    let doc = lines.join(" ").trim().to_string();
    (!doc.is_empty()).then_some(doc)
}

#[derive(Default)]
struct FieldOpts {
    default: Option<Expr>,
    bounds: Vec<(&'static str, Expr)>,
    non_empty: bool,
    one_of: Option<Vec<LitStr>>,
    flatten: bool,
    defaults: Vec<(Ident, Expr)>,
    max_bytes: Option<Expr>,
}

fn field_opts(field: &syn::Field) -> syn::Result<FieldOpts> {
    let mut o = FieldOpts::default();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("param")) {
        attr.parse_nested_meta(|m| {
            let key = m.path.get_ident().map(Ident::to_string).unwrap_or_default();
            match key.as_str() {
                "default" => o.default = Some(m.value()?.parse()?),
                "min" | "max" | "gt" | "lt" => {
                    let k = match key.as_str() {
                        "min" => "min",
                        "max" => "max",
                        "gt" => "gt",
                        _ => "lt",
                    };
                    o.bounds.push((k, m.value()?.parse()?));
                }
                "positive" => o.bounds.push(("gt", syn::parse_quote!(0))),
                "max_bytes" => o.max_bytes = Some(m.value()?.parse()?),
                "non_empty" => o.non_empty = true,
                "flatten" => o.flatten = true,
                "one_of" => {
                    let list: syn::ExprArray = m.value()?.parse()?;
                    let mut opts = Vec::new();
                    for e in list.elems {
                        match e {
                            Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => opts.push(s),
                            other => return Err(syn::Error::new(other.span(), "`one_of` takes string literals")),
                        }
                    }
                    o.one_of = Some(opts);
                }
                "defaults" => {
                    m.parse_nested_meta(|d| {
                        let name = d.path.get_ident().cloned().ok_or_else(|| d.error("expected a parameter name"))?;
                        o.defaults.push((name, d.value()?.parse()?));
                        Ok(())
                    })?;
                }
                _ => {
                    return Err(m.error(
                        "unknown option; `#[param]` takes default, min, max, gt, lt, positive, non_empty, one_of, max_bytes, flatten, defaults",
                    ));
                }
            }
            Ok(())
        })?;
    }
    if o.flatten
        && (o.default.is_some() || !o.bounds.is_empty() || o.non_empty || o.one_of.is_some() || o.max_bytes.is_some())
    {
        return Err(syn::Error::new(field.span(), "a `flatten` field takes only `defaults(…)`"));
    }
    if !o.flatten && !o.defaults.is_empty() {
        return Err(syn::Error::new(field.span(), "`defaults(…)` belongs to a `flatten` field"));
    }
    Ok(o)
}

fn params(input: &DeriveInput) -> syn::Result<Tokens> {
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(input.span(), "`Params` derives for structs with named fields"));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new(input.span(), "`Params` derives for structs with named fields"));
    };
    let lib = quote!(::lab_ops::params);
    let names: Vec<String> = fields.named.iter().map(|f| param_name(f.ident.as_ref().expect("named"))).collect();
    let mut specs = Vec::new();
    let mut checks = Vec::new();
    let mut reads = Vec::new();
    for (field, name) in fields.named.iter().zip(&names) {
        let ident = field.ident.as_ref().expect("named");
        let ty = &field.ty;
        let opts = field_opts(field)?;
        let span = field.span();
        if opts.flatten {
            let sets = opts.defaults.iter().map(|(k, e)| {
                let k = param_name(k);
                quote_spanned!(e.span()=> #lib::set_default(&mut out[start..], #k, ::lab_ops::Value::from(#e));)
            });
            specs.push(if opts.defaults.is_empty() {
                quote_spanned!(span=> <#ty as #lib::Params>::specs(out);)
            } else {
                quote_spanned!(span=> {
                    let start = out.len();
                    <#ty as #lib::Params>::specs(out);
                    #(#sets)*
                })
            });
            checks.push(quote_spanned!(span=> <#ty as #lib::Params>::checks(out);));
            reads.push(quote_spanned!(span=> #ident: <#ty as #lib::Params>::from_args(args)?));
            continue;
        }
        let Some(doc) = doc_of(&field.attrs) else {
            return Err(syn::Error::new(span, format!("document the parameter `{name}` with a `///` comment")));
        };
        let default = match &opts.default {
            None => quote!(::core::option::Option::None),
            Some(e) => quote_spanned!(e.span()=> ::core::option::Option::Some({
                let d: #ty = <#ty as #lib::FromDefault<_>>::from_default(#e);
                <#ty as #lib::ValueParam>::to_value(&d)
            })),
        };
        specs.push(quote_spanned!(span=> out.push(::lab_ops::ParamSpec {
            name: #name,
            ty: <#ty as #lib::ParamType>::ty(),
            default: #default,
            doc: #doc,
        });));
        let has_min = opts.bounds.iter().any(|(k, _)| matches!(*k, "min" | "gt"));
        checks.push(quote_spanned!(span=> <#ty as #lib::ParamType>::implied(#name, #has_min, out);));
        for (kind, e) in &opts.bounds {
            let (variant, strict) = match *kind {
                "min" => (quote!(Min), false),
                "gt" => (quote!(Min), true),
                "max" => (quote!(Max), false),
                _ => (quote!(Max), true),
            };
            let field_name = if matches!(*kind, "min" | "gt") { quote!(min) } else { quote!(max) };
            checks.push(quote_spanned!(e.span()=>
                out.push(::lab_ops::Check::#variant { param: #name, #field_name: (#e) as f64, strict: #strict });));
        }
        if opts.non_empty {
            checks.push(quote_spanned!(span=> out.push(::lab_ops::Check::NonEmpty { param: #name });));
        }
        if let Some(e) = &opts.max_bytes {
            checks.push(
                quote_spanned!(e.span()=> out.push(::lab_ops::Check::MaxBytes { param: #name, bytes: (#e) as u64 });),
            );
        }
        if let Some(options) = &opts.one_of {
            checks.push(
                quote_spanned!(span=> out.push(::lab_ops::Check::OneOf { param: #name, options: &[#(#options),*] });),
            );
        }
        reads.push(quote_spanned!(span=> #ident: <#ty as #lib::ParamType>::from_arg(args, #name)?));
    }
    // Rules between fields.
    let field = |id: &Ident| -> syn::Result<String> {
        let n = param_name(id);
        if names.contains(&n) {
            Ok(n)
        } else {
            Err(syn::Error::new(id.span(), format!("`{n}` is not a field of this struct")))
        }
    };
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("params")) {
        attr.parse_nested_meta(|m| {
            let key = m.path.get_ident().map(Ident::to_string).unwrap_or_default();
            let content;
            match key.as_str() {
                "rules" => {
                    let path: syn::Path = m.value()?.parse()?;
                    checks.push(quote_spanned!(path.span()=> out.extend(#path());));
                    return Ok(());
                }
                "less" | "same_length" | "same_length_or_empty" => {
                    syn::parenthesized!(content in m.input);
                    let ids = content.parse_terminated(Ident::parse_any, syn::Token![,])?;
                    let ids: Vec<&Ident> = ids.iter().collect();
                    if ids.len() != 2 {
                        return Err(m.error(format!("`{key}` names two fields")));
                    }
                    let (a, b) = (field(ids[0])?, field(ids[1])?);
                    checks.push(match key.as_str() {
                        "less" => quote!(out.push(::lab_ops::Check::Less { low: #a, high: #b });),
                        k => {
                            let optional = k == "same_length_or_empty";
                            quote!(out.push(::lab_ops::Check::SameLength { a: #a, b: #b, b_optional: #optional });)
                        }
                    });
                }
                "within" => {
                    syn::parenthesized!(content in m.input);
                    let param: Ident = content.parse()?;
                    content.parse::<syn::Token![,]>()?;
                    let input: Ident = content.parse()?;
                    content.parse::<syn::Token![=]>()?;
                    let fact: LitStr = content.parse()?;
                    let (p, i) = (field(&param)?, field(&input)?);
                    checks.push(quote!(out.push(::lab_ops::Check::Within { param: #p, input: #i, fact: #fact });));
                }
                "agree" => {
                    syn::parenthesized!(content in m.input);
                    let a: Ident = content.parse()?;
                    content.parse::<syn::Token![=]>()?;
                    let fa: LitStr = content.parse()?;
                    content.parse::<syn::Token![,]>()?;
                    let b: Ident = content.parse()?;
                    content.parse::<syn::Token![=]>()?;
                    let fb: LitStr = content.parse()?;
                    let (a, b) = (field(&a)?, field(&b)?);
                    checks.push(quote!(out.push(::lab_ops::Check::Agree { a: (#a, #fa), b: (#b, #fb) });));
                }
                _ => {
                    return Err(m.error(
                        "unknown rule; `#[params]` takes less, same_length, same_length_or_empty, within, agree, rules",
                    ));
                }
            }
            Ok(())
        })?;
    }
    let name = &input.ident;
    let (impl_g, ty_g, where_g) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_g #lib::Params for #name #ty_g #where_g {
            fn specs(out: &mut ::std::vec::Vec<::lab_ops::ParamSpec>) {
                #(#specs)*
            }
            fn checks(out: &mut ::std::vec::Vec<::lab_ops::Check>) {
                #(#checks)*
            }
            fn from_args(args: &::lab_ops::Args) -> ::core::result::Result<Self, ::lab_ops::OpError> {
                ::core::result::Result::Ok(Self { #(#reads,)* })
            }
        }
    })
}

/// `TrainBody` → `train_body`
fn snake(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn choice(input: &DeriveInput) -> syn::Result<Tokens> {
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new(input.span(), "`Choice` derives for enums without fields"));
    };
    let mut idents = Vec::new();
    let mut names = Vec::new();
    for v in &data.variants {
        if !matches!(v.fields, Fields::Unit) {
            return Err(syn::Error::new(v.span(), "a `Choice` variant has no fields"));
        }
        let mut name = snake(&v.ident.to_string());
        for attr in v.attrs.iter().filter(|a| a.path().is_ident("choice")) {
            attr.parse_nested_meta(|m| {
                if m.path.is_ident("name") {
                    name = m.value()?.parse::<LitStr>()?.value();
                    Ok(())
                } else {
                    Err(m.error("`#[choice]` takes `name = \"…\"`"))
                }
            })?;
        }
        idents.push(&v.ident);
        names.push(LitStr::new(&name, Span::call_site()));
    }
    let name = &input.ident;
    let lib = quote!(::lab_ops::params);
    Ok(quote! {
        impl #lib::Options for #name {
            const OPTIONS: &'static [&'static str] = &[#(#names),*];
            fn as_str(self) -> &'static str {
                match self { #(#name::#idents => #names,)* }
            }
        }
        impl ::core::str::FromStr for #name {
            type Err = ::std::string::String;
            fn from_str(s: &str) -> ::core::result::Result<Self, Self::Err> {
                match s {
                    #(#names => ::core::result::Result::Ok(#name::#idents),)*
                    other => ::core::result::Result::Err(#lib::not_an_option(other, <Self as #lib::Options>::OPTIONS)),
                }
            }
        }
        impl ::core::fmt::Display for #name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(#lib::Options::as_str(*self))
            }
        }
    })
}

use syn::ext::IdentExt;
