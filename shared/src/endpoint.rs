//! Every route of the API, described once: its method, its path, what it takes and what it
//! answers. The server's router, the widget's client and the tests' helpers are written against
//! these, so a path or a body cannot drift between them.

/// The HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
}

impl Method {
    /// The method's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// One route.
pub trait Endpoint {
    /// Its method.
    const METHOD: Method;
    /// Its path; `{name}` marks a path parameter (the router's own syntax).
    const PATH: &'static str;
    /// The JSON body or query it takes (`()` for none).
    type Request;
    /// The JSON body of a success (`()` for none).
    type Response;

    /// The path with its parameters filled in, in order, each percent-encoded as one segment.
    fn path(params: &[&str]) -> String {
        let mut out = String::with_capacity(Self::PATH.len());
        let mut params = params.iter();
        let mut rest = Self::PATH;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let Some(len) = rest[start..].find('}') else { break };
            out.push_str(&encode_segment(params.next().copied().unwrap_or("")));
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Declares endpoint types: `Name: METHOD "path" => Request -> Response`.
macro_rules! endpoints {
    ($($(#[$meta:meta])* $name:ident: $method:ident $path:literal => $request:ty, $response:ty;)+) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl $crate::endpoint::Endpoint for $name {
                const METHOD: $crate::endpoint::Method = $crate::endpoint::Method::$method;
                const PATH: &'static str = $path;
                type Request = $request;
                type Response = $response;
            }
        )+
    };
}
pub(crate) use endpoints;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::widget::GetFlow;

    #[test]
    fn paths_are_filled_in_and_encoded() {
        assert_eq!(GetFlow::path(&["flow_1"]), "/widget/v1/flows/flow_1");
        assert_eq!(GetFlow::path(&["a/b c"]), "/widget/v1/flows/a%2Fb%20c");
    }
}
