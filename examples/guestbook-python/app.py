"""The guestbook in Python (componentize-py): the same routes, storage and pages as the
Rust guestbook in examples/guestbook, against the same nukisashi:platform/module world.

- GET  /             an HTML page with the entries and a form (title from config)
- GET  /entries      the entries as JSON, newest first
- POST /entries      add an entry (JSON {"name", "message"} or a form post)
- GET  /entries/ID   one entry

Entries live in the module's key-value store, which the host keeps per municipality.
Everything is imported at the top: componentize-py snapshots the module at build time, and
the host gives a module no files to import from later.
"""

import html
import json
from urllib.parse import parse_qsl

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import config, context, identity, kv, log
from wit_world.imports import nukisashi_platform_types as platform
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.wasi_http_types import (
    Fields,
    IncomingRequest,
    Method_Get,
    Method_Head,
    Method_Post,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

MAX_NAME_CHARS = 100
MAX_MESSAGE_CHARS = 2000
MAX_BODY_BYTES = 64 * 1024
FORM_TOKEN_FIELD = "nukisashi_form_token"


class Refusal(Exception):
    """A request refused with a status and a sentence saying what to do."""

    def __init__(self, status, detail):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def platform_refusal(error):
    """The platform's refusal of a call, as the module answers it."""
    value = error.value if isinstance(error, Err) else error
    if isinstance(value, platform.Error_NotGranted):
        return Refusal(403, f"this municipality has not granted the `{value.value}` capability to the module")
    if isinstance(value, platform.Error_TooLarge):
        return Refusal(413, value.value)
    if isinstance(value, platform.Error_Invalid):
        return Refusal(400, value.value)
    return Refusal(503, str(getattr(value, "value", value)))


def entry_key(entry_id):
    # Zero-padded so that keys sort in insertion order.
    return f"entry/{entry_id:012d}"


def title():
    return config.get("title") or f"{context.current_municipality().name} ゲストブック"


def entries():
    keys, after = [], None
    while True:
        page = kv.list_keys("entry/", after, 1000)
        keys.extend(page.keys)
        if page.next is None:
            break
        after = page.next
    out = []
    for key in keys:
        value = kv.get(key)
        if value is not None:
            out.append(json.loads(value))
    out.reverse()
    return out


def validate(name, message):
    if not name.strip() or not message.strip():
        raise Refusal(422, "both name and message are required")
    if len(name.strip()) > MAX_NAME_CHARS or len(message) > MAX_MESSAGE_CHARS:
        raise Refusal(422, f"name is limited to {MAX_NAME_CHARS} characters and message to {MAX_MESSAGE_CHARS}")


def add(request):
    media_type = request.header("content-type").split(";")[0].strip().lower()
    is_form = media_type == "application/x-www-form-urlencoded"
    form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)) if is_form else {}
    # With a browser session the host gives the page a form token; a post with that session
    # must bring it back, unless it is JSON (which no page elsewhere can send).
    token = request.header("x-nukisashi-form-token")
    if token and media_type != "application/json" and form.get(FORM_TOKEN_FIELD) != token:
        raise Refusal(403, "このフォームは、このサービスのページから送られたものと確かめられませんでした。ページを開き直して、もう一度送信してください。")
    if is_form:
        name, message = form.get("name", ""), form.get("message", "")
    else:
        try:
            new = json.loads(request.body)
            name, message = str(new["name"]), str(new["message"])
        except (ValueError, KeyError, TypeError) as e:
            raise Refusal(400, f"invalid JSON body: {e}")
    validate(name, message)
    # Atomic: concurrent posts never get the same id.
    entry_id = kv.increment("last-id", 1)
    entry = {"id": entry_id, "name": name, "message": message}
    kv.set(entry_key(entry_id), json.dumps(entry, ensure_ascii=False).encode())
    log.log(log.Level.INFO, f"guestbook entry {entry_id} added")
    if is_form:
        return 303, [("location", request.header("x-nukisashi-base-path") + "/")], b""
    return json_response(entry, 201)


def show(entry_id):
    if not entry_id.isdigit():
        raise Refusal(400, "entry ids are whole numbers")
    value = kv.get(entry_key(int(entry_id)))
    if value is None:
        raise Refusal(404, f"no entry {entry_id}")
    return 200, [("content-type", "application/json")], value


def page(request):
    town = context.current_municipality()
    caller = identity.current_caller()
    who = f"<p>{html.escape(caller.display_name)} さん</p>" if caller.display_name else ""
    token = request.header("x-nukisashi-form-token")
    token_field = f'<input type="hidden" name="{FORM_TOKEN_FIELD}" value="{html.escape(token)}">' if token else ""
    items = "".join(f"<li><strong>{html.escape(e['name'])}</strong>: {html.escape(e['message'])}</li>" for e in entries())
    action = html.escape(request.header("x-nukisashi-base-path") + "/entries")
    t = html.escape(title())
    body = f"""<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{t}</title></head>
<body><main>
<h1>{t}</h1>
<p>{html.escape(town.name)} ({town.lg_code})</p>{who}
<form method="post" action="{action}">{token_field}
<p><label for="name">お名前</label> <input id="name" name="name" required maxlength="{MAX_NAME_CHARS}"></p>
<p><label for="message">メッセージ</label> <textarea id="message" name="message" required maxlength="{MAX_MESSAGE_CHARS}"></textarea></p>
<p><button type="submit">記帳する</button></p>
</form>
<ul>{items}</ul>
<p>Python (componentize-py) で書かれています。</p>
</main></body></html>"""
    return 200, [("content-type", "text/html; charset=utf-8")], body.encode()


def json_response(value, status=200):
    return status, [("content-type", "application/json")], json.dumps(value, ensure_ascii=False).encode()


def problem(status, detail):
    body = {"type": f"about:blank#module-{status}", "title": "Refused", "status": status, "detail": detail}
    return status, [("content-type", "application/problem+json")], json.dumps(body, ensure_ascii=False).encode()


class Request:
    """The parts of an incoming request the routes use, with the body read whole."""

    def __init__(self, incoming: IncomingRequest):
        self.method = incoming.method()
        self.path = (incoming.path_with_query() or "/").split("?", 1)[0]
        self.headers = {}
        for name, value in incoming.headers().entries():
            self.headers.setdefault(name.lower(), value.decode("utf-8", "replace"))
        self.body = read_body(incoming)

    def header(self, name):
        return self.headers.get(name, "")


def read_body(incoming):
    body = incoming.consume()
    stream = body.stream()
    data = bytearray()
    try:
        while True:
            chunk = stream.blocking_read(16 * 1024)
            data.extend(chunk)
            if len(data) > MAX_BODY_BYTES:
                raise Refusal(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    except Err as e:
        if not isinstance(e.value, StreamError_Closed):
            raise Refusal(400, "the body could not be read")
    finally:
        stream.__exit__(None, None, None)
    return bytes(data)


def route(request):
    segments = [s for s in request.path.split("/") if s]
    get = isinstance(request.method, (Method_Get, Method_Head))
    if segments == [] and get:
        return page(request)
    if segments == ["entries"] and get:
        return json_response(entries())
    if segments == ["entries"] and isinstance(request.method, Method_Post):
        return add(request)
    if len(segments) == 2 and segments[0] == "entries" and get:
        return show(segments[1])
    raise Refusal(404, f"this module has no route {request.path}")


def respond(out, status, headers, body):
    response = OutgoingResponse(Fields.from_list([(k, v.encode()) for k, v in headers]))
    response.set_status_code(status)
    outgoing = response.body()
    ResponseOutparam.set(out, Ok(response))
    stream = outgoing.write()
    # Writes are bounded by what the stream accepts at once.
    for start in range(0, len(body), 4096):
        stream.blocking_write_and_flush(body[start:start + 4096])
    stream.__exit__(None, None, None)
    OutgoingBody.finish(outgoing, None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        try:
            status, headers, body = route(Request(request))
        except Refusal as r:
            status, headers, body = problem(r.status, r.detail)
        except Err as e:
            r = platform_refusal(e)
            status, headers, body = problem(r.status, r.detail)
        respond(response_out, status, headers, body)
