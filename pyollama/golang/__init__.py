"""The one copy of Go's behaviour that pyollama imitates, where Ollama's output shows it.

Ollama is written in Go: its error texts quote with strconv, its templates print with fmt,
its blobs are written by encoding/json, its durations and timestamps are Go's. Each rule
lives here once, in pure Python; this package imports nothing else from pyollama.

Go values that Python has no shape for are modelled in `values`; every other module
mirrors one Go package:

values
    NO_VALUE (reflect's invalid Value), Uint8, Struct, Typed, NilPointer, OMIT_NEVER/EMPTY/NIL
    (how a struct field's `omitempty` behaves), is_nil(v).
strconv
    quote(s) -> str: strconv.Quote (fmt's %q and %#v of a string).
    quote_rune(code) -> str: strconv.QuoteRune (and encoding/json's quoteChar).
    format_float(f, fmt="g", prec=-1) -> str: strconv.FormatFloat(f, fmt, prec, 64);
    format_float(f) alone is fmt's %v of a float64.
    unquote(s), unquote_char(s, quote), parse_int(s), parse_float(s): strconv.Unquote,
    UnquoteChar, ParseInt(s, 0, 64), ParseFloat(s, 64) as text/template's parser uses them
    (NumError is their ErrSyntax).
fmt
    sprint(args), sprintln(args), sprintf(format, args), sprint_value(v): fmt.Sprint,
    Sprintln, Sprintf and %v, with Go's verbs, flags and %!verb(...) complaints.
    type_name(v, json_decoded=False): %T; with json_decoded, every number is a float64 as
    encoding/json decodes it into an interface{}.
    sorted_items(d): map entries in the order fmt and text/template's range visit them.
json
    marshal(v, sort_keys=True) -> str: json.Marshal (compact, HTML-safe, map keys sorted;
    sort_keys=False for a dict that stands for a Go struct). Returns text, no newline.
    encode(v, sort_keys=True) -> bytes: json.NewEncoder(w).Encode: marshal's text, a
    newline, UTF-8.
    quote(s), format_float(f): how encoding/json writes one string and one float64.
    UnsupportedValueError: Marshal's `json: unsupported value: NaN` / `unsupported type`.
    decode(text): json.Decoder.Decode of the first value; DecodeError with Go's syntax
    error texts. kind(v), unmarshal_type_error(v, field, go_type): UnmarshalTypeError's text.
time
    parse_duration(s) -> float seconds: time.ParseDuration (ValueError with Go's text).
    format_rfc3339(dt, nanos=None), parse_rfc3339(s): time.RFC3339Nano, both ways.
"""
