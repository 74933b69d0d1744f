//! Glue between `wasi:http/incoming-handler` and the [`Router`]: read the request, run
//! the handler, write the response. Called by the [`module!`](crate::module) macro.

use crate::bindings::wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, Method as WasiMethod, OutgoingBody, OutgoingResponse,
    ResponseOutparam,
};
use crate::bindings::wasi::io::streams::StreamError;
use crate::http::{Method, Request, Response};
use crate::{Error, Router};

/// Request bodies larger than this are refused with 413 before any handler runs.
pub const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

pub fn serve(request: IncomingRequest, out: ResponseOutparam, routes: fn() -> Router) {
    let response = match read_request(request) {
        Ok(request) => routes().dispatch(request),
        Err(e) => e.into_response(),
    };
    write_response(out, response);
}

fn read_request(request: IncomingRequest) -> Result<Request, Error> {
    let method = match request.method() {
        WasiMethod::Get => Method::Get,
        WasiMethod::Head => Method::Head,
        WasiMethod::Post => Method::Post,
        WasiMethod::Put => Method::Put,
        WasiMethod::Patch => Method::Patch,
        WasiMethod::Delete => Method::Delete,
        WasiMethod::Options => Method::Options,
        WasiMethod::Connect => Method::Other("CONNECT".into()),
        WasiMethod::Trace => Method::Other("TRACE".into()),
        WasiMethod::Other(m) => Method::Other(m),
    };
    let path = request.path_with_query().unwrap_or_else(|| "/".into());
    let headers = request.headers().entries();
    // Reading an empty body still costs a round trip through the host's body task, so GET
    // and HEAD bodies (which carry no meaning) and declared-empty bodies are not read.
    // (Transfer-Encoding is hop-by-hop and may be gone by now, so it cannot be relied on.)
    let declared_empty = headers.iter().any(|(name, value)| name == "content-length" && value.as_slice() == b"0");
    let body = if matches!(method, Method::Get | Method::Head) || declared_empty {
        Vec::new()
    } else {
        read_body(request.consume().map_err(|()| Error::internal("request body already taken"))?)?
    };
    Ok(Request::new(method, &path, headers, body))
}

fn read_body(body: IncomingBody) -> Result<Vec<u8>, Error> {
    let stream = body.stream().map_err(|()| Error::internal("request body stream already taken"))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > MAX_REQUEST_BODY {
                    return Err(Error::new(
                        413,
                        "Request body too large",
                        format!("request bodies are limited to {MAX_REQUEST_BODY} bytes"),
                    ));
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(Error::bad_request(format!("reading the request body failed: {}", e.to_debug_string())));
            }
        }
    }
    drop(stream);
    IncomingBody::finish(body);
    Ok(bytes)
}

fn write_response(out: ResponseOutparam, response: Response) {
    let headers = Fields::new();
    for (name, value) in &response.headers {
        // Header names come from handler code; an invalid one is a module bug, surfaced as 500.
        if headers.append(name, value).is_err() {
            let e = Error::internal(format!("the module set an invalid header `{name}`"));
            return write_response(out, e.into_response());
        }
    }
    let outgoing = OutgoingResponse::new(headers);
    outgoing.set_status_code(response.status).ok();
    let body = outgoing.body().expect("a new response has a body");
    ResponseOutparam::set(out, Ok(outgoing));
    let stream = body.write().expect("a new body has a stream");
    for chunk in response.body.chunks(4096) {
        if stream.blocking_write_and_flush(chunk).is_err() {
            // The client went away; nothing more to do.
            return;
        }
    }
    drop(stream);
    OutgoingBody::finish(body, None).ok();
}
