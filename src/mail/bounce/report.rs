//! Reading bounce and complaint reports: RFC 3464 delivery status notifications
//! (`multipart/report; report-type=delivery-status`), RFC 5965 ARF complaint reports
//! (`report-type=feedback-report`), and the plain-text notices some MTAs still send (Exim's
//! "This message was created automatically by mail delivery software").
//!
//! The input is whatever a stranger sent to a VERP address, so the limits come first: the size
//! is checked before anything is read, and the MIME structure is walked here, iteratively,
//! counting depth and parts as it goes and giving up at [`MAX_MIME_DEPTH`] or
//! [`MAX_MIME_PARTS`]. The MIME parser (`mail-parser`) only ever reads one header block at a
//! time: handed a whole message it nests `message/rfc822` parts by recursion, and a 1 MiB
//! message of nested parts overflows the stack. An attached original message is never
//! descended into; only its headers are read.

use std::borrow::Cow;

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{ContentType, HeaderName, HeaderValue, Message, MessageParser, MimeHeaders};

/// The largest report read (the listener refuses bigger ones while reading DATA).
pub const MAX_REPORT_BYTES: usize = 1024 * 1024;
/// How deep multiparts may nest (the top-level message is depth 0). Real reports use 2.
pub const MAX_MIME_DEPTH: usize = 10;
/// How many MIME parts a report may have, all levels counted. Real reports have under 10.
pub const MAX_MIME_PARTS: usize = 100;
/// The diagnostic text is cut to this many characters.
pub const MAX_DIAGNOSTIC_CHARS: usize = 1000;
/// Other fields (addresses, MTA names, ids) are cut to this many characters.
const MAX_FIELD_CHARS: usize = 320;

/// What a report says happened to the email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// Not delivered: `permanent` for a 5.x.x status (a hard bounce: the address should be
    /// suppressed), otherwise a 4.x.x "delayed" notice (the remote MTA is still trying).
    Bounce { permanent: bool },
    /// The recipient marked the email as spam (ARF `Feedback-Type: abuse`, `fraud`, `virus`
    /// or `other`).
    Complaint,
}

/// The headers of the email the report is about, when the report attaches them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginalHeaders {
    /// `Return-Path`, without the angle brackets (for our emails, the VERP address).
    pub return_path: Option<String>,
    /// The first address of `To`.
    pub to: Option<String>,
    /// `Message-ID`, without the angle brackets.
    pub message_id: Option<String>,
}

/// A bounce or complaint, as read from the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedReport {
    pub kind: ReportKind,
    /// The address that failed or complained (`Final-Recipient`, else `Original-Recipient`;
    /// ARF's `Original-Rcpt-To`; Exim's `X-Failed-Recipients`), without its `rfc822;` type.
    pub recipient: Option<String>,
    /// The enhanced status code (`5.1.1`); for a notice without one, `5.0.0` or `4.0.0`
    /// from the SMTP reply code. `None` for complaints.
    pub status: Option<String>,
    /// The remote server's reply (`Diagnostic-Code` without its `smtp;` type), on one line,
    /// at most [`MAX_DIAGNOSTIC_CHARS`] characters.
    pub diagnostic: Option<String>,
    /// `Reporting-MTA` without its `dns;` type; for a plain-text notice, the domain of the
    /// notice's sender.
    pub reporting_mta: Option<String>,
    /// ARF's `Feedback-Type` (`abuse`, …), lowercase; `None` for bounces.
    pub feedback_type: Option<String>,
    /// What the report attaches of the original email.
    pub original: OriginalHeaders,
}

/// Why a message gives no [`ParsedReport`]. The first three are refusals decided before
/// anything is interpreted; the others are messages read in full that are not reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("the report is larger than {MAX_REPORT_BYTES} bytes")]
    TooLarge,
    #[error("the report's MIME parts nest deeper than {MAX_MIME_DEPTH} levels")]
    TooDeep,
    #[error("the report has more than {MAX_MIME_PARTS} MIME parts")]
    TooManyParts,
    /// It claims to be a report but its report part cannot be read.
    #[error("malformed report: {0}")]
    Malformed(String),
    /// Neither a failure or delay notice nor a complaint: an auto-reply, a plain email, a
    /// notice of successful delivery, a DMARC failure report.
    #[error("not a bounce or complaint report")]
    NotAReport,
}

impl ReportError {
    /// Whether the message was refused for its size or shape (a MIME bomb) rather than read
    /// and found not to be a report.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::TooLarge | Self::TooDeep | Self::TooManyParts)
    }
}

/// Reads a bounce or complaint report from a message's raw bytes (as received in SMTP DATA,
/// dot-unstuffed). Never panics; anything it cannot make sense of is an error.
pub fn parse_report(raw: &[u8]) -> Result<ParsedReport, ReportError> {
    if raw.len() > MAX_REPORT_BYTES {
        return Err(ReportError::TooLarge);
    }
    let tree = Tree::walk(raw)?;
    let root = &tree.parts[0];
    let report_type = root
        .content_type
        .as_ref()
        .filter(|ct| ct.is("multipart", "report"))
        .and_then(|ct| ct.report_type.clone());
    let find = |ctype: &str, subtypes: &[&str]| {
        tree.parts.iter().find(|p| {
            p.content_type
                .as_ref()
                .is_some_and(|ct| subtypes.iter().any(|s| ct.is(ctype, s)))
        })
    };
    let original = find("message", &["rfc822", "global", "global-headers"])
        .or_else(|| find("text", &["rfc822-headers"]))
        .map(|p| original_headers(&p.body))
        .unwrap_or_default();

    let feedback = find("message", &["feedback-report"]);
    if report_type.as_deref() == Some("feedback-report") || feedback.is_some() {
        let part = feedback
            .ok_or_else(|| ReportError::Malformed("no message/feedback-report part".into()))?;
        return complaint(&part.body, original);
    }
    let status = find("message", &["delivery-status", "global-delivery-status"]);
    if report_type.as_deref() == Some("delivery-status") || status.is_some() {
        let part = status
            .ok_or_else(|| ReportError::Malformed("no message/delivery-status part".into()))?;
        return delivery_status(&part.body, original);
    }
    plain_text_notice(&tree)
}

/// One MIME part as the walk found it: its headers (parsed by `mail-parser`) and its
/// decoded body. Multipart containers keep their headers and an empty body.
struct Part<'a> {
    headers: Option<Message<'a>>,
    content_type: Option<Ctype>,
    body: Cow<'a, [u8]>,
}

/// The content type, lowercase.
#[derive(Debug, Clone)]
struct Ctype {
    ctype: String,
    subtype: String,
    boundary: Option<String>,
    report_type: Option<String>,
    charset: Option<String>,
}

impl Ctype {
    fn from(ct: &ContentType<'_>) -> Self {
        Self {
            ctype: ct.ctype().to_ascii_lowercase(),
            subtype: ct.subtype().unwrap_or_default().to_ascii_lowercase(),
            boundary: ct.attribute("boundary").map(str::to_string),
            report_type: ct.attribute("report-type").map(|r| r.to_ascii_lowercase()),
            charset: ct.attribute("charset").map(str::to_string),
        }
    }

    fn is(&self, ctype: &str, subtype: &str) -> bool {
        self.ctype == ctype && self.subtype == subtype
    }
}

/// The message's parts in document order, the top-level message first.
struct Tree<'a> {
    parts: Vec<Part<'a>>,
}

impl<'a> Tree<'a> {
    /// Walks the MIME structure breadth-first with an explicit queue, so nothing recurses:
    /// each multipart's body is split at its boundary and its children queued one level
    /// deeper; the limits are checked as parts are found.
    fn walk(raw: &'a [u8]) -> Result<Self, ReportError> {
        let mut parts = Vec::new();
        let mut queue = std::collections::VecDeque::from([(raw, 0usize)]);
        let mut found = 1usize;
        while let Some((bytes, depth)) = queue.pop_front() {
            let (headers, body) = split_headers(bytes);
            let content_type = headers
                .as_ref()
                .and_then(|m| m.content_type())
                .map(Ctype::from);
            let boundary = content_type
                .as_ref()
                .filter(|ct| ct.ctype == "multipart")
                .and_then(|ct| ct.boundary.clone());
            if let Some(boundary) = boundary {
                let children = split_multipart(body, boundary.as_bytes());
                if !children.is_empty() {
                    if depth + 1 > MAX_MIME_DEPTH {
                        return Err(ReportError::TooDeep);
                    }
                    found += children.len();
                    if found > MAX_MIME_PARTS {
                        return Err(ReportError::TooManyParts);
                    }
                    queue.extend(children.into_iter().map(|c| (c, depth + 1)));
                    parts.push(Part {
                        headers,
                        content_type,
                        body: Cow::Borrowed(&[]),
                    });
                    continue;
                }
            }
            let body = decode_body(headers.as_ref(), body);
            parts.push(Part {
                headers,
                content_type,
                body,
            });
        }
        if parts[0].headers.is_none() {
            return Err(ReportError::NotAReport);
        }
        Ok(Self { parts })
    }
}

/// A part's header block (`None` when it has none) and the body after it.
fn split_headers(bytes: &[u8]) -> (Option<Message<'_>>, &[u8]) {
    if bytes.starts_with(b"\r\n") {
        return (None, &bytes[2..]);
    }
    if bytes.starts_with(b"\n") {
        return (None, &bytes[1..]);
    }
    match MessageParser::default().parse_headers(bytes) {
        Some(m) => {
            let offset = (m.root_part().offset_body as usize).min(bytes.len());
            (Some(m), &bytes[offset..])
        }
        None => (None, bytes),
    }
}

/// The parts of a multipart body: what lies between `--boundary` delimiter lines, up to the
/// `--boundary--` close (or the end, when the close is missing). The line break before a
/// delimiter belongs to the delimiter.
fn split_multipart<'a>(body: &'a [u8], boundary: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut line_start = 0;
    while line_start <= body.len() {
        let line_end = body[line_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |i| line_start + i);
        let line = &body[line_start..line_end];
        if let Some(after) = line
            .strip_prefix(b"--")
            .and_then(|l| l.strip_prefix(boundary))
        {
            let close = after.starts_with(b"--");
            let rest = if close { &after[2..] } else { after };
            if rest.iter().all(|b| b.is_ascii_whitespace()) {
                if let Some(s) = start {
                    let mut end = line_start.saturating_sub(1).max(s);
                    if end > s && body[end - 1] == b'\r' {
                        end -= 1;
                    }
                    parts.push(&body[s..end]);
                }
                if close {
                    return parts;
                }
                start = Some((line_end + 1).min(body.len()));
            }
        }
        line_start = line_end + 1;
    }
    if let Some(s) = start {
        parts.push(&body[s..]);
    }
    parts
}

/// A leaf body, with its Content-Transfer-Encoding undone (an undecodable body stays as
/// received).
fn decode_body<'a>(headers: Option<&Message<'_>>, body: &'a [u8]) -> Cow<'a, [u8]> {
    let encoding = headers
        .and_then(|m| m.header(HeaderName::ContentTransferEncoding))
        .and_then(HeaderValue::as_text)
        .map(|e| e.trim().to_ascii_lowercase());
    let decoded = match encoding.as_deref() {
        Some("base64") => base64_decode(body),
        Some("quoted-printable") => quoted_printable_decode(body),
        _ => None,
    };
    decoded.map_or(Cow::Borrowed(body), Cow::Owned)
}

/// A text body as a string, in its charset.
fn text(part: &Part<'_>) -> String {
    let charset = part
        .content_type
        .as_ref()
        .and_then(|c| c.charset.as_deref());
    match charset.and_then(|c| charset_decoder(c.as_bytes())) {
        Some(decode) => decode(&part.body),
        None => String::from_utf8_lossy(&part.body).into_owned(),
    }
}

/// The fields of a `message/delivery-status` or `message/feedback-report` body: blocks of
/// `Name: value` lines separated by blank lines, continuation lines folded in. Names
/// lowercase; a continuation keeps its line break so the SMTP reply's lines can be told
/// apart.
fn field_blocks(body: &[u8]) -> Vec<Vec<(String, String)>> {
    let body = String::from_utf8_lossy(body);
    let mut blocks: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if blocks.last().is_some_and(|b: &Vec<_>| !b.is_empty()) {
                blocks.push(Vec::new());
            }
            continue;
        }
        let block = blocks.last_mut().expect("never empty");
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = block.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            block.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    blocks.retain(|b| !b.is_empty());
    blocks
}

fn field<'b>(block: &'b [(String, String)], name: &str) -> Option<&'b str> {
    block
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// A typed field's value without its type (`rfc822; a@b` → `a@b`, `dns; mx.example` →
/// `mx.example`), on one line, bounded.
fn untyped(value: &str) -> String {
    let value = value.split_once(';').map_or(value, |(_, v)| v);
    let value = value.trim().trim_start_matches('<').trim_end_matches('>');
    bounded(&one_line(value), MAX_FIELD_CHARS)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn bounded(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((at, _)) => s[..at].trim_end().to_string(),
        None => s.to_string(),
    }
}

/// An enhanced status code `class.subject.detail` (RFC 3463) at the start of `s`.
fn status_code(s: &str) -> Option<String> {
    let token = s.split_whitespace().next()?;
    let token = token.trim_end_matches([';', ',', ':', '.', ')']);
    let mut pieces = token.split('.');
    let class = pieces.next()?;
    let subject = pieces.next()?;
    let detail = pieces.next()?;
    let digits = |p: &str, max: usize| {
        !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit())
    };
    (pieces.next().is_none()
        && matches!(class, "2" | "4" | "5")
        && digits(subject, 3)
        && digits(detail, 3))
    .then(|| token.to_string())
}

/// The first enhanced status code anywhere in `text` (a 4 or 5 class).
fn status_in(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == '-' || c == '#' || c == '(')
        .filter_map(status_code)
        .find(|s| s.starts_with(['4', '5']))
}

/// The remote server's reply from a `Diagnostic-Code` value: its type (`smtp;`) removed, a
/// multi-line reply's repeated `550-5.1.1` prefixes dropped, on one line, bounded.
fn diagnostic(value: &str) -> Option<String> {
    let value = match value.split_once(';') {
        Some((kind, rest)) if !kind.contains(' ') && kind.len() <= 20 => rest,
        _ => value,
    };
    let mut lines = value.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next()?;
    let mut out = first.to_string();
    for line in lines {
        out.push(' ');
        out.push_str(without_reply_prefix(line));
    }
    let out = bounded(&one_line(&out), MAX_DIAGNOSTIC_CHARS);
    (!out.is_empty()).then_some(out)
}

/// `550-5.1.1 text` or `550 5.1.1 text` → `text` (a continuation line of an SMTP reply).
fn without_reply_prefix(line: &str) -> &str {
    let bytes = line.as_bytes();
    if bytes.len() > 4
        && bytes[..3].iter().all(u8::is_ascii_digit)
        && matches!(bytes[3], b'-' | b' ')
    {
        let rest = &line[4..];
        match rest.split_once(' ') {
            Some((code, text)) if status_code(code).is_some() => text.trim_start(),
            _ if status_code(rest).is_some() => "",
            _ => rest,
        }
    } else {
        line
    }
}

/// An RFC 3464 `message/delivery-status` body. Of several recipients, the first that failed
/// is reported, else the first delayed; a report of successful delivery is not a bounce.
fn delivery_status(body: &[u8], original: OriginalHeaders) -> Result<ParsedReport, ReportError> {
    let blocks = field_blocks(body);
    let (per_message, recipients) = match blocks.split_first() {
        Some((first, rest)) if field(first, "final-recipient").is_none() => (Some(first), rest),
        _ => (None, &blocks[..]),
    };
    if recipients.is_empty() {
        return Err(ReportError::Malformed("no per-recipient fields".into()));
    }
    let action = |b: &[(String, String)]| field(b, "action").map(|a| a.to_ascii_lowercase());
    let class = |b: &[(String, String)]| {
        field(b, "status")
            .and_then(status_code)
            .map(|s| s.as_bytes()[0])
    };
    let failed = |b: &&Vec<(String, String)>| {
        action(b).as_deref() == Some("failed") || class(b) == Some(b'5')
    };
    let delayed = |b: &&Vec<(String, String)>| {
        action(b).as_deref() == Some("delayed") || class(b) == Some(b'4')
    };
    let block = recipients
        .iter()
        .find(failed)
        .or_else(|| recipients.iter().find(delayed))
        .ok_or(ReportError::NotAReport)?;
    let diagnostic = field(block, "diagnostic-code").and_then(diagnostic);
    let status = field(block, "status")
        .and_then(status_code)
        .filter(|s| !s.starts_with('2'))
        .or_else(|| diagnostic.as_deref().and_then(status_in));
    let permanent = match status.as_deref().map(|s| s.as_bytes()[0]) {
        Some(b'5') => true,
        Some(_) => false,
        None => action(block).as_deref() != Some("delayed"),
    };
    let status = status.or_else(|| Some(if permanent { "5.0.0" } else { "4.0.0" }.to_string()));
    Ok(ParsedReport {
        kind: ReportKind::Bounce { permanent },
        recipient: field(block, "final-recipient")
            .or_else(|| field(block, "original-recipient"))
            .map(untyped),
        status,
        diagnostic,
        reporting_mta: per_message
            .and_then(|b| field(b, "reporting-mta"))
            .map(untyped),
        feedback_type: None,
        original,
    })
}

/// An RFC 5965 `message/feedback-report` body.
fn complaint(body: &[u8], original: OriginalHeaders) -> Result<ParsedReport, ReportError> {
    let fields: Vec<_> = field_blocks(body).into_iter().flatten().collect();
    let feedback_type = field(&fields, "feedback-type")
        .map(|t| one_line(t).to_ascii_lowercase())
        .ok_or_else(|| ReportError::Malformed("no Feedback-Type".into()))?;
    if !matches!(
        feedback_type.as_str(),
        "abuse" | "fraud" | "virus" | "other"
    ) {
        // not-spam, auth-failure (DMARC), or unknown: nothing the recipient complained of.
        return Err(ReportError::NotAReport);
    }
    let recipient = field(&fields, "original-rcpt-to")
        .map(untyped)
        .or_else(|| original.to.clone());
    Ok(ParsedReport {
        kind: ReportKind::Complaint,
        recipient,
        status: None,
        diagnostic: None,
        reporting_mta: field(&fields, "reporting-mta").map(untyped),
        feedback_type: Some(bounded(&feedback_type, MAX_FIELD_CHARS)),
        original,
    })
}

/// The headers of an attached original message (`message/rfc822`) or of a
/// `text/rfc822-headers` part. Only the header block is parsed.
fn original_headers(body: &[u8]) -> OriginalHeaders {
    let Some(m) = MessageParser::default().parse_headers(body) else {
        return OriginalHeaders::default();
    };
    let return_path = match m.return_path() {
        HeaderValue::Text(t) => Some(t.to_string()),
        HeaderValue::TextList(l) => l.first().map(|t| t.to_string()),
        HeaderValue::Address(a) => a.first().and_then(|a| a.address()).map(str::to_string),
        _ => None,
    };
    let clean = |s: &str| {
        let s = s.trim();
        let s = s.strip_prefix('<').unwrap_or(s);
        bounded(s.strip_suffix('>').unwrap_or(s).trim(), MAX_FIELD_CHARS)
    };
    OriginalHeaders {
        return_path: return_path.map(|r| clean(&r)).filter(|r| !r.is_empty()),
        to: m
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(clean),
        message_id: m.message_id().map(clean).filter(|m| !m.is_empty()),
    }
}

/// The marker line of Exim's (and Exim-like) plain-text failure notices.
const EXIM_MARKER: &str = "this message was created automatically by mail delivery software";

/// A notice in plain text, without a delivery-status part: Exim's classic form, recognised
/// by its opening sentence or its `X-Failed-Recipients` header, and sent by a mailer daemon.
fn plain_text_notice(tree: &Tree<'_>) -> Result<ParsedReport, ReportError> {
    let root = tree.parts[0]
        .headers
        .as_ref()
        .ok_or(ReportError::NotAReport)?;
    let failed_header = root
        .header(HeaderName::Other("X-Failed-Recipients".into()))
        .and_then(HeaderValue::as_text)
        .map(str::to_string);
    let Some(body) = tree
        .parts
        .iter()
        .find(|p| {
            p.content_type
                .as_ref()
                .is_none_or(|ct| ct.is("text", "plain"))
        })
        .map(text)
    else {
        return Err(ReportError::NotAReport);
    };
    let lower = body.to_ascii_lowercase();
    let from = root
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let from_daemon = from
        .split('@')
        .next()
        .is_some_and(|local| matches!(local, "mailer-daemon" | "postmaster" | "mail-daemon"));
    if !(from_daemon && (lower.contains(EXIM_MARKER) || failed_header.is_some())) {
        return Err(ReportError::NotAReport);
    }

    let lines: Vec<&str> = body.lines().map(|l| l.trim_end_matches('\r')).collect();
    let copy_at = lines.iter().position(|l| {
        l.trim_start()
            .starts_with("------ This is a copy of the message")
    });
    let notice = &lines[..copy_at.unwrap_or(lines.len())];

    // The failed address: the header, else the first indented line after "failed:".
    let listed = notice
        .iter()
        .position(|l| l.trim_end().to_ascii_lowercase().ends_with("failed:"))
        .and_then(|at| {
            notice[at + 1..]
                .iter()
                .map(|l| l.trim())
                .find(|l| !l.is_empty())
        })
        .map(|l| l.trim_start_matches('<').trim_end_matches('>').to_string());
    let recipient = failed_header
        .as_deref()
        .and_then(|h| h.split(',').next())
        .map(untyped)
        .or(listed.filter(|l| l.contains('@')).map(|l| untyped(&l)))
        .filter(|r| !r.is_empty());

    // The reply: the indented lines after "SMTP error from remote mail server …:", else
    // the first indented line that starts with an SMTP reply code.
    let reply = notice
        .iter()
        .position(|l| l.to_ascii_lowercase().contains("smtp error from remote"))
        .map(|at| {
            notice[at + 1..]
                .iter()
                .take_while(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|r| !r.is_empty())
        .or_else(|| {
            notice
                .iter()
                .map(|l| l.trim())
                .find(|l| reply_code(l).is_some())
                .map(|l| vec![l.to_string()])
        });
    let diagnostic = reply.and_then(|r| diagnostic(&r.join("\n")));

    let delayed = lower.contains("has not yet been delivered")
        || lower.contains("this is a temporary error")
        || lower.contains("message not yet delivered");
    let status = diagnostic.as_deref().and_then(|d| {
        status_in(d).or_else(|| match reply_code(d) {
            Some(b'5') => Some("5.0.0".to_string()),
            Some(b'4') => Some("4.0.0".to_string()),
            _ => None,
        })
    });
    let permanent = match status.as_deref().map(|s| s.as_bytes()[0]) {
        Some(b'5') => true,
        Some(_) => false,
        None => !delayed,
    };
    let status = status.or_else(|| Some(if permanent { "5.0.0" } else { "4.0.0" }.to_string()));
    let original = copy_at
        .map(|at| {
            let rest = lines[at + 1..].join("\r\n");
            original_headers(rest.trim_start().as_bytes())
        })
        .unwrap_or_default();
    Ok(ParsedReport {
        kind: ReportKind::Bounce { permanent },
        recipient,
        status,
        diagnostic,
        reporting_mta: from
            .split_once('@')
            .map(|(_, d)| bounded(d, MAX_FIELD_CHARS)),
        feedback_type: None,
        original,
    })
}

/// The class digit of an SMTP reply code (`550 …` → `b'5'`) at the start of `line`.
fn reply_code(line: &str) -> Option<u8> {
    let b = line.as_bytes();
    (b.len() >= 4
        && matches!(b[0], b'4' | b'5')
        && b[1..3].iter().all(u8::is_ascii_digit)
        && matches!(b[3], b' ' | b'-'))
    .then_some(b[0])
}
