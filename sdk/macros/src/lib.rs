//! Macros of `chard-sdk`: `#[task]` and `export_tasks!`.
//!
//! `#[task]` leaves the author's function untouched and adds a hidden type
//! `__chard_task_<name>` that implements `chard_sdk::__private::Task`: the
//! task's metadata plus a `call` that binds JSON arguments to the parameters.
//! `export_tasks!(a, b)` implements the component's `tasks` interface by
//! dispatching on those hidden types. Signatures the glue cannot serve (async,
//! generics, `self`, borrowed arguments other than `&Context`) are rejected
//! here with an error on the offending tokens, not deep inside generated code.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, FnArg, ItemFn, Lit, Meta, Pat, ReturnType, Token, Type};

/// Marks a plain function as a task. See the crate docs of `chard-sdk`.
///
/// Options (all optional): `name = "..."`, `queue = "..."`,
/// `time_limit = SECONDS`, `soft_time_limit = SECONDS`, `memory_limit = MIB`,
/// `max_retries = N`, `default_retry_delay = SECONDS`, `rate_limit = "10/s"`,
/// `autoretry_for = ["ConnectionError", ...]`, `retry_backoff = SECONDS`,
/// `retry_backoff_max = SECONDS`, `retry_jitter = true`.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function = syn::parse_macro_input!(item as ItemFn);
    let options = match Punctuated::<Meta, Token![,]>::parse_terminated.parse(attr) {
        Ok(options) => options,
        Err(error) => return error.to_compile_error().into(),
    };
    match expand_task(options, &function) {
        Ok(glue) => quote!(#function #glue).into(),
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#function #error).into()
        }
    }
}

#[derive(Default)]
struct TaskOptions {
    name: Option<String>,
    queue: Option<String>,
    time_limit_ms: Option<u64>,
    soft_time_limit_ms: Option<u64>,
    memory_limit_mb: Option<u32>,
    max_retries: Option<u32>,
    default_retry_delay_ms: Option<u64>,
    rate_limit: Option<String>,
    autoretry_for: Vec<String>,
    retry_backoff_ms: Option<u64>,
    retry_backoff_max_ms: Option<u64>,
    retry_jitter: bool,
}

fn parse_options(options: Punctuated<Meta, Token![,]>) -> syn::Result<TaskOptions> {
    let mut parsed = TaskOptions::default();
    for option in options {
        let Meta::NameValue(pair) = &option else {
            return Err(syn::Error::new(option.span(), "expected `key = value`, e.g. `time_limit = 5`"));
        };
        let key = pair.path.get_ident().map(|ident| ident.to_string()).unwrap_or_default();
        let value = &pair.value;
        match key.as_str() {
            "name" => parsed.name = Some(string(value)?),
            "queue" => parsed.queue = Some(string(value)?),
            "rate_limit" => parsed.rate_limit = Some(rate_limit(value)?),
            "time_limit" => parsed.time_limit_ms = Some(millis(value)?),
            "soft_time_limit" => parsed.soft_time_limit_ms = Some(millis(value)?),
            "default_retry_delay" => parsed.default_retry_delay_ms = Some(millis(value)?),
            "retry_backoff" => parsed.retry_backoff_ms = Some(millis(value)?),
            "retry_backoff_max" => parsed.retry_backoff_max_ms = Some(millis(value)?),
            "memory_limit" => parsed.memory_limit_mb = Some(integer(value)?),
            "max_retries" => parsed.max_retries = Some(integer(value)?),
            "retry_jitter" => parsed.retry_jitter = boolean(value)?,
            "autoretry_for" => parsed.autoretry_for = strings(value)?,
            _ => {
                return Err(syn::Error::new(
                    pair.path.span(),
                    format!(
                        "unknown task option `{key}`; expected one of: name, queue, time_limit, \
                         soft_time_limit, memory_limit, max_retries, default_retry_delay, \
                         rate_limit, autoretry_for, retry_backoff, retry_backoff_max, retry_jitter"
                    ),
                ))
            }
        }
    }
    Ok(parsed)
}

fn literal(value: &Expr) -> Option<&Lit> {
    match value {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        _ => None,
    }
}

fn string(value: &Expr) -> syn::Result<String> {
    match literal(value) {
        Some(Lit::Str(text)) => Ok(text.value()),
        _ => Err(syn::Error::new(value.span(), "expected a string literal")),
    }
}

fn boolean(value: &Expr) -> syn::Result<bool> {
    match literal(value) {
        Some(Lit::Bool(flag)) => Ok(flag.value),
        _ => Err(syn::Error::new(value.span(), "expected `true` or `false`")),
    }
}

fn integer<T: std::str::FromStr>(value: &Expr) -> syn::Result<T>
where
    T::Err: std::fmt::Display,
{
    match literal(value) {
        Some(Lit::Int(number)) => number.base10_parse(),
        _ => Err(syn::Error::new(value.span(), "expected a whole number")),
    }
}

/// Seconds (integer or float literal) to milliseconds.
fn millis(value: &Expr) -> syn::Result<u64> {
    let seconds: f64 = match literal(value) {
        Some(Lit::Int(number)) => number.base10_parse()?,
        Some(Lit::Float(number)) => number.base10_parse()?,
        _ => return Err(syn::Error::new(value.span(), "expected a number of seconds, e.g. `5` or `0.5`")),
    };
    if !(seconds >= 0.0 && seconds.is_finite()) {
        return Err(syn::Error::new(value.span(), "expected a non-negative number of seconds"));
    }
    Ok((seconds * 1000.0).round() as u64)
}

fn strings(value: &Expr) -> syn::Result<Vec<String>> {
    match value {
        Expr::Array(array) => array.elems.iter().map(string).collect(),
        _ => Err(syn::Error::new(value.span(), "expected a list of strings, e.g. `[\"ConnectionError\"]`")),
    }
}

fn rate_limit(value: &Expr) -> syn::Result<String> {
    let text = string(value)?;
    let valid = match text.split_once('/') {
        Some((count, unit)) => count.trim().parse::<f64>().is_ok() && matches!(unit.trim(), "s" | "m" | "h"),
        None => text.trim().parse::<f64>().is_ok(),
    };
    if valid {
        Ok(text)
    } else {
        Err(syn::Error::new(value.span(), "expected a rate like \"10/s\", \"100/m\" or \"1000/h\""))
    }
}

/// `&Context` or `Context` (by any path ending in `Context`).
fn context_kind(ty: &Type) -> Option<bool> {
    let (by_ref, inner) = match ty {
        Type::Reference(reference) if reference.mutability.is_none() => (true, &*reference.elem),
        other => (false, other),
    };
    match inner {
        Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == "Context") => Some(by_ref),
        _ => None,
    }
}

/// The last segment of a type's path: `Option` for `std::option::Option<T>`.
fn last_segment(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(path) => path.path.segments.last().map(|segment| segment.ident.to_string()),
        _ => None,
    }
}

fn returns_result(output: &ReturnType) -> bool {
    matches!(output, ReturnType::Type(_, ty)
        if matches!(&**ty, Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == "Result")))
}

fn first_doc_line(function: &ItemFn) -> Option<String> {
    function.attrs.iter().find_map(|attr| match &attr.meta {
        Meta::NameValue(pair) if pair.path.is_ident("doc") => {
            string(&pair.value).ok().map(|line| line.trim().to_string()).filter(|line| !line.is_empty())
        }
        _ => None,
    })
}

fn expand_task(options: Punctuated<Meta, Token![,]>, function: &ItemFn) -> syn::Result<TokenStream2> {
    let signature = &function.sig;
    if let Some(token) = &signature.asyncness {
        return Err(syn::Error::new(token.span(), "a task cannot be `async`: tasks run to completion in their own sandbox"));
    }
    if !signature.generics.params.is_empty() || signature.generics.where_clause.is_some() {
        return Err(syn::Error::new(signature.generics.span(), "a task cannot be generic: its argument types must be known"));
    }
    if let Some(variadic) = &signature.variadic {
        return Err(syn::Error::new(variadic.span(), "a task cannot be variadic"));
    }
    let options = parse_options(options)?;
    let function_name = &signature.ident;
    let task_name = options.name.clone().unwrap_or_else(|| function_name.to_string());

    let mut params = Vec::new();
    let mut optional = Vec::new();
    // `*args` / `**kwargs` as `host tasks` shows them.
    let mut rest_names = Vec::new();
    let (mut takes_args, mut takes_kwargs) = (false, false);
    let mut decode = Vec::new();
    let mut call_args = Vec::new();
    for input in &signature.inputs {
        let FnArg::Typed(typed) = input else {
            return Err(syn::Error::new(input.span(), "a task is a free function: it cannot take `self`"));
        };
        let Pat::Ident(binding) = &*typed.pat else {
            return Err(syn::Error::new(typed.pat.span(), "task parameters must be plain names, e.g. `x: i64`"));
        };
        let ty = &*typed.ty;
        match context_kind(ty) {
            Some(true) => {
                call_args.push(quote!(__chard_context));
                continue;
            }
            Some(false) => {
                call_args.push(quote!(::core::clone::Clone::clone(__chard_context)));
                continue;
            }
            None => {}
        }
        if let Type::Reference(reference) = ty {
            return Err(syn::Error::new(
                reference.span(),
                "task parameters are owned values decoded from JSON: use `String` for `&str`, `Vec<T>` for `&[T]`",
            ));
        }
        if let Type::ImplTrait(_) = ty {
            return Err(syn::Error::new(ty.span(), "task parameters need a concrete type"));
        }
        let name = binding.ident.to_string();
        let name = name.trim_start_matches("r#").to_string();
        let kind = last_segment(ty);
        match kind.as_deref() {
            Some("Args") if !takes_args => {
                takes_args = true;
                rest_names.push(format!("*{name}"));
                call_args.push(quote!(::chard_sdk::Args(::core::mem::take(&mut __chard_bound.rest_args))));
                continue;
            }
            Some("Kwargs") if !takes_kwargs => {
                takes_kwargs = true;
                rest_names.push(format!("**{name}"));
                call_args.push(quote!(::chard_sdk::Kwargs(::core::mem::take(&mut __chard_bound.rest_kwargs))));
                continue;
            }
            Some("Args" | "Kwargs") => {
                return Err(syn::Error::new(ty.span(), "a task takes at most one `Args` and one `Kwargs` parameter"));
            }
            _ => {}
        }
        let local = format_ident!("__chard_arg_{}", name);
        let decoder = if kind.as_deref() == Some("Maybe") {
            quote!(::chard_sdk::__private::decode_maybe)
        } else {
            quote!(::chard_sdk::__private::decode_argument)
        };
        decode.push(quote_spanned! {ty.span()=>
            let #local: #ty = #decoder(#task_name, #name, __chard_values.next().flatten())?;
        });
        call_args.push(quote!(#local));
        optional.push(matches!(kind.as_deref(), Some("Option" | "Maybe")));
        params.push(name);
    }

    // `task-info.params` in Python's notation: `y?` for a parameter that
    // may be left out, then `*args`, `**kwargs`. The worker checks the
    // calls it sends to this task against it, as Celery does.
    let declared: Vec<String> = params
        .iter()
        .zip(&optional)
        .map(|(name, optional)| if *optional { format!("{name}?") } else { name.clone() })
        .chain(rest_names.iter().cloned())
        .collect();

    let encode = if returns_result(&signature.output) {
        quote! {
            let __chard_value = __chard_result.map_err(::core::convert::Into::<::chard_sdk::TaskError>::into)?;
            ::chard_sdk::__private::encode_result(#task_name, &__chard_value)
        }
    } else {
        quote!(::chard_sdk::__private::encode_result(#task_name, &__chard_result))
    };

    let marker = format_ident!("__chard_task_{}", function_name);
    let doc = match first_doc_line(function) {
        Some(line) => quote!(::core::option::Option::Some(#line.to_string())),
        None => quote!(::core::option::Option::None),
    };
    let opt_string = |value: &Option<String>| match value {
        Some(text) => quote!(::core::option::Option::Some(#text.to_string())),
        None => quote!(::core::option::Option::None),
    };
    let opt_number = |value: Option<u64>| match value {
        Some(number) => quote!(::core::option::Option::Some(#number)),
        None => quote!(::core::option::Option::None),
    };
    let queue = opt_string(&options.queue);
    let rate = opt_string(&options.rate_limit);
    let time_limit = opt_number(options.time_limit_ms);
    let soft_time_limit = opt_number(options.soft_time_limit_ms);
    let retry_delay = opt_number(options.default_retry_delay_ms);
    let backoff = opt_number(options.retry_backoff_ms);
    let backoff_max = opt_number(options.retry_backoff_max_ms);
    let memory = match options.memory_limit_mb {
        Some(number) => quote!(::core::option::Option::Some(#number)),
        None => quote!(::core::option::Option::None),
    };
    let max_retries = match options.max_retries {
        Some(number) => quote!(::core::option::Option::Some(#number)),
        None => quote!(::core::option::Option::None),
    };
    let autoretry = &options.autoretry_for;
    let jitter = options.retry_jitter;
    let vis = &function.vis;

    Ok(quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis struct #marker;

        impl ::chard_sdk::__private::Task for #marker {
            const NAME: &'static str = #task_name;

            fn info() -> ::chard_sdk::__private::TaskInfo {
                ::chard_sdk::__private::TaskInfo {
                    name: #task_name.to_string(),
                    params: ::std::vec![#(#declared.to_string()),*],
                    doc: #doc,
                    defaults: ::chard_sdk::__private::TaskDefaults {
                        queue: #queue,
                        time_limit_ms: #time_limit,
                        soft_time_limit_ms: #soft_time_limit,
                        memory_limit_mb: #memory,
                        max_retries: #max_retries,
                        default_retry_delay_ms: #retry_delay,
                        rate_limit: #rate,
                        autoretry_for: ::std::vec![#(#autoretry.to_string()),*],
                        retry_backoff_ms: #backoff,
                        retry_backoff_max_ms: #backoff_max,
                        retry_jitter: #jitter,
                    },
                }
            }

            #[allow(unused_variables, unused_mut)]
            fn call(
                __chard_args: &str,
                __chard_kwargs: &str,
                __chard_context: &::chard_sdk::Context,
            ) -> ::core::result::Result<::std::string::String, ::chard_sdk::__private::WitTaskError> {
                let __chard_run = || -> ::core::result::Result<::std::string::String, ::chard_sdk::TaskError> {
                    let __chard_shape = ::chard_sdk::__private::Shape {
                        params: &[#(#params),*],
                        optional: &[#(#optional),*],
                        takes_args: #takes_args,
                        takes_kwargs: #takes_kwargs,
                    };
                    let mut __chard_bound = ::chard_sdk::__private::bind_arguments(
                        #task_name, &__chard_shape, __chard_args, __chard_kwargs)?;
                    let mut __chard_values = ::core::mem::take(&mut __chard_bound.values).into_iter();
                    #(#decode)*
                    let __chard_result = #function_name(#(#call_args),*);
                    #encode
                };
                __chard_run().map_err(::core::convert::Into::into)
            }
        }
    })
}

struct TaskList(Punctuated<syn::Path, Token![,]>);

impl Parse for TaskList {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        Ok(Self(Punctuated::parse_terminated(input)?))
    }
}

/// Exports the listed `#[task]` functions as this crate's component.
/// Call it once per plugin: `chard_sdk::export_tasks!(add, mul);`.
#[proc_macro]
pub fn export_tasks(input: TokenStream) -> TokenStream {
    let TaskList(paths) = syn::parse_macro_input!(input as TaskList);
    if paths.is_empty() {
        return syn::Error::new(Span::call_site(), "export_tasks! needs at least one task")
            .to_compile_error()
            .into();
    }
    let markers: Vec<syn::Path> = paths
        .iter()
        .map(|path| {
            let mut marker = path.clone();
            let last = marker.segments.last_mut().expect("a path has a last segment");
            last.ident = format_ident!("__chard_task_{}", last.ident);
            marker
        })
        .collect();
    quote! {
        #[doc(hidden)]
        struct __ChardPlugin;

        impl ::chard_sdk::__private::Guest for __ChardPlugin {
            fn list_tasks() -> ::std::vec::Vec<::chard_sdk::__private::TaskInfo> {
                ::std::vec![#(<#markers as ::chard_sdk::__private::Task>::info()),*]
            }

            fn run(
                name: ::std::string::String,
                args: ::std::string::String,
                kwargs: ::std::string::String,
                context: ::chard_sdk::Context,
            ) -> ::core::result::Result<::std::string::String, ::chard_sdk::__private::WitTaskError> {
                ::chard_sdk::__private::job_started();
                #(
                    if name == <#markers as ::chard_sdk::__private::Task>::NAME {
                        return <#markers as ::chard_sdk::__private::Task>::call(&args, &kwargs, &context);
                    }
                )*
                ::core::result::Result::Err(::chard_sdk::__private::unknown_task(&name))
            }
        }

        ::chard_sdk::bindings::__export_plugin!(__ChardPlugin with_types_in ::chard_sdk::bindings);
    }
    .into()
}
