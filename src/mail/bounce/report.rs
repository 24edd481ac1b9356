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

/// A part's header block (`None` when it has none) and the body after it: the block ends at
/// the first empty line.
fn split_headers(bytes: &[u8]) -> (Option<Message<'_>>, &[u8]) {
    let mut line_start = 0;
    let (header_end, body_start) = loop {
        let Some(n) = bytes[line_start..].iter().position(|&b| b == b'\n') else {
            break (bytes.len(), bytes.len());
        };
        let line = &bytes[line_start..line_start + n];
        if line.is_empty() || line == b"\r" {
            break (line_start, line_start + n + 1);
        }
        line_start += n + 1;
    };
    let headers = if header_end == 0 {
        None
    } else {
        MessageParser::default().parse_headers(&bytes[..header_end])
    };
    (headers, &bytes[body_start..])
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
    // the first line with an SMTP reply code in it.
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
                .find(|l| reply_code_in(l).is_some())
                .map(|l| vec![l.to_string()])
        });
    let diagnostic = reply.and_then(|r| diagnostic(&r.join("\n")));

    let delayed = lower.contains("has not yet been delivered")
        || lower.contains("this is a temporary error")
        || lower.contains("message not yet delivered");
    let status = diagnostic.as_deref().and_then(|d| {
        status_in(d).or_else(|| match reply_code_in(d) {
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

/// The class digit of the first SMTP reply code (`… 550-No such user` → `b'5'`) in `text`,
/// at its start or after a space.
fn reply_code_in(text: &str) -> Option<u8> {
    text.char_indices()
        .filter(|&(i, _)| i == 0 || text.as_bytes()[i - 1] == b' ')
        .find_map(|(i, _)| reply_code(&text[i..]))
}

/// The class digit of an SMTP reply code (`550 …` → `b'5'`) at the start of `line`.
fn reply_code(line: &str) -> Option<u8> {
    let b = line.as_bytes();
    (b.len() >= 4
        && matches!(b[0], b'4' | b'5')
        && b[1..3].iter().all(u8::is_ascii_digit)
        && matches!(b[3], b' ' | b'-'))
    .then(|| b[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/bounces/{name}.eml",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The fixture as it arrives over SMTP: CRLF line breaks.
    fn crlf(raw: &[u8]) -> Vec<u8> {
        String::from_utf8_lossy(raw)
            .replace("\r\n", "\n")
            .replace('\n', "\r\n")
            .into_bytes()
    }

    /// Parses the fixture with LF and with CRLF line breaks; both must read the same.
    fn parsed(name: &str) -> ParsedReport {
        let raw = fixture(name);
        let lf = parse_report(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        let with_crlf = parse_report(&crlf(&raw)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(lf, with_crlf, "{name}: LF and CRLF read differently");
        lf
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn postfix_hard_bounce() {
        let r = parsed("postfix_hard_bounce");
        assert_eq!(r.kind, ReportKind::Bounce { permanent: true });
        assert_eq!(r.recipient, some("alex@customer-isp.example"));
        assert_eq!(r.status, some("5.1.1"));
        assert_eq!(
            r.diagnostic,
            some(
                "550 5.1.1 <alex@customer-isp.example>: Recipient address rejected: \
                 User unknown in virtual mailbox table"
            )
        );
        assert_eq!(r.reporting_mta, some("mail.customer-isp.example"));
        assert_eq!(r.feedback_type, None);
        assert_eq!(
            r.original,
            OriginalHeaders {
                return_path: some("bounces+42-0f3a9c1d2b7e@bounces.harborview.example"),
                to: some("alex@customer-isp.example"),
                message_id: some("delivery-42.q1w2e3r4t5y6@harborview.example"),
            }
        );
    }

    #[test]
    fn postfix_delay_notice_is_a_temporary_bounce() {
        let r = parsed("postfix_delayed");
        assert_eq!(r.kind, ReportKind::Bounce { permanent: false });
        assert_eq!(r.status, some("4.4.1"));
        assert_eq!(r.recipient, some("sam@storage-co.example"));
        assert_eq!(
            r.diagnostic,
            some("connect to mx.storage-co.example[192.0.2.44]:25: Connection timed out")
        );
        assert_eq!(
            r.original.message_id,
            some("delivery-77.a9s8d7f6g5h4@harborview.example")
        );
    }

    #[test]
    fn exim_dsn() {
        let r = parsed("exim_dsn");
        assert_eq!(r.kind, ReportKind::Bounce { permanent: true });
        assert_eq!(r.recipient, some("jordan@lakeside-mail.example"));
        assert_eq!(r.status, some("5.0.0"));
        assert_eq!(
            r.diagnostic,
            some("550 5.2.1 <jordan@lakeside-mail.example>: mailbox disabled")
        );
        assert_eq!(r.reporting_mta, some("smtp.lakeside-mail.example"));
        assert_eq!(
            r.original,
            OriginalHeaders {
                return_path: some("bounces+108-1a2b3c4d5e6f@bounces.harborview.example"),
                to: some("jordan@lakeside-mail.example"),
                message_id: some("delivery-108.z1x2c3v4b5n6@harborview.example"),
            }
        );
    }

    #[test]
    fn exim_plain_text_notice() {
        let r = parsed("exim_plain_text");
        assert_eq!(r.kind, ReportKind::Bounce { permanent: true });
        assert_eq!(r.recipient, some("casey@old-host.example"));
        assert_eq!(r.status, some("5.0.0"));
        let diagnostic = r.diagnostic.unwrap();
        assert!(
            diagnostic.starts_with(
                "host inbound.old-host.example [198.51.100.77]: 550-Verification failed"
            ),
            "{diagnostic}"
        );
        assert!(
            diagnostic.ends_with("No Such User Here Sender verify failed"),
            "{diagnostic}"
        );
        assert_eq!(r.reporting_mta, some("mx.old-host.example"));
        assert_eq!(
            r.original,
            OriginalHeaders {
                return_path: some("bounces+311-9f8e7d6c5b4a@bounces.harborview.example"),
                to: some("casey@old-host.example"),
                message_id: some("delivery-311.m1n2b3v4c5x6@harborview.example"),
            }
        );
    }

    #[test]
    fn exim_plain_text_delay_warning() {
        let raw = b"From: Mail Delivery System <Mailer-Daemon@mx.old-host.example>\n\
            To: bounces+311-9f8e7d6c5b4a@bounces.harborview.example\n\
            Subject: Warning: message 1Q2W3E-0004Rt-Yu delayed 24 hours\n\n\
            This message was created automatically by mail delivery software.\n\n\
            A message that you sent has not yet been delivered to one or more of its\n\
            recipients after more than 24 hours on the queue on mx.old-host.example.\n\n\
            The following address(es) deferred:\n\n  casey@old-host.example\n\
            \x20   host inbound.old-host.example [198.51.100.77]: 451 4.3.0 Try again later\n";
        let r = parse_report(raw).unwrap();
        assert_eq!(r.kind, ReportKind::Bounce { permanent: false });
        assert_eq!(r.status, some("4.3.0"));
    }

    #[test]
    fn exchange_online_ndr() {
        let r = parsed("exchange_ndr");
        assert_eq!(r.kind, ReportKind::Bounce { permanent: true });
        assert_eq!(r.recipient, some("riley@contoso-storage.example"));
        assert_eq!(r.status, some("5.1.10"));
        assert_eq!(
            r.diagnostic,
            some(
                "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP \
                 address lookup"
            )
        );
        assert_eq!(
            r.reporting_mta,
            some("BN8PR12MB3346.namprd12.prod.outlook.com")
        );
        assert_eq!(
            r.original,
            OriginalHeaders {
                return_path: some("bounces+2024-77aa88bb99cc@bounces.harborview.example"),
                to: some("riley@contoso-storage.example"),
                message_id: some("delivery-2024.p0o9i8u7y6t5@harborview.example"),
            }
        );
    }

    #[test]
    fn gmail_bounce_with_a_multi_line_reply() {
        let r = parsed("gmail_bounce");
        assert_eq!(r.kind, ReportKind::Bounce { permanent: true });
        assert_eq!(r.recipient, some("morgan.nosuchuser@gmail.com"));
        assert_eq!(r.status, some("5.1.1"));
        assert_eq!(
            r.diagnostic,
            some(
                "550-5.1.1 The email account that you tried to reach does not exist. Please \
                 try double-checking the recipient's email address for typos or unnecessary \
                 spaces. For more information, go to https://support.google.com/mail/?p=NoSuchUser \
                 5b1f17b1804b1-42f6e8d2f3bsi1234567f8f.123 - gsmtp"
            )
        );
        assert_eq!(r.reporting_mta, some("googlemail.com"));
        assert_eq!(
            r.original.return_path,
            some("bounces+515-c0ffee123456@bounces.harborview.example")
        );
        assert_eq!(
            r.original.message_id,
            some("delivery-515.l0k9j8h7g6f5@harborview.example")
        );
    }

    #[test]
    fn arf_abuse_report_is_a_complaint() {
        let r = parsed("arf_abuse");
        assert_eq!(r.kind, ReportKind::Complaint);
        assert_eq!(r.feedback_type, some("abuse"));
        assert_eq!(r.recipient, some("taylor@hotmail.example"));
        assert_eq!(r.status, None);
        assert_eq!(r.reporting_mta, some("mail.hotmail.example"));
        assert_eq!(
            r.original,
            OriginalHeaders {
                return_path: some("bounces+9001-abcdef012345@bounces.harborview.example"),
                to: some("taylor@hotmail.example"),
                message_id: some("delivery-9001.r5t6y7u8i9o0@harborview.example"),
            }
        );
    }

    #[test]
    fn arf_without_original_rcpt_to_names_the_original_recipient() {
        let raw = String::from_utf8(fixture("arf_abuse"))
            .unwrap()
            .replace("Original-Rcpt-To: <taylor@hotmail.example>\n", "");
        assert_eq!(
            parse_report(raw.as_bytes()).unwrap().recipient,
            some("taylor@hotmail.example")
        );
        // A DMARC failure report or a "not spam" report is not a complaint.
        for other in ["auth-failure", "not-spam"] {
            let raw = raw.replace("Feedback-Type: abuse", &format!("Feedback-Type: {other}"));
            assert_eq!(
                parse_report(raw.as_bytes()),
                Err(ReportError::NotAReport),
                "{other}"
            );
        }
    }

    #[test]
    fn messages_that_are_not_reports() {
        for name in ["auto_reply", "plain_email"] {
            assert_eq!(
                parse_report(&fixture(name)),
                Err(ReportError::NotAReport),
                "{name}"
            );
        }
        for raw in [
            &b""[..],
            b"\r\n\r\n",
            b"garbage without headers",
            b"\0\xff\xfe",
        ] {
            assert!(parse_report(raw).is_err(), "{raw:?}");
        }
        // Someone quoting Exim's sentence is not a mailer daemon.
        let quoted = b"From: sam@example.com\nSubject: look\n\n\
            This message was created automatically by mail delivery software.\n";
        assert_eq!(parse_report(quoted), Err(ReportError::NotAReport));
    }

    #[test]
    fn a_notice_of_successful_delivery_is_not_a_bounce() {
        let raw = String::from_utf8(fixture("postfix_hard_bounce"))
            .unwrap()
            .replace(
                "Action: failed\nStatus: 5.1.1",
                "Action: delivered\nStatus: 2.0.0",
            );
        assert_eq!(parse_report(raw.as_bytes()), Err(ReportError::NotAReport));
    }

    #[test]
    fn malformed_reports_are_errors() {
        // A report without its status part.
        let raw = b"From: MAILER-DAEMON@mx.example\nContent-Type: multipart/report; \
            report-type=delivery-status; boundary=b\n\n--b\nContent-Type: text/plain\n\n\
            It failed.\n--b--\n";
        assert!(matches!(parse_report(raw), Err(ReportError::Malformed(_))));
        // A status part without recipients.
        let raw = b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n\
            --b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n--b--\n";
        assert!(matches!(parse_report(raw), Err(ReportError::Malformed(_))));
        // A feedback report without its type.
        let raw = b"Content-Type: multipart/report; report-type=feedback-report; boundary=b\n\n\
            --b\nContent-Type: message/feedback-report\n\nVersion: 1\n--b--\n";
        assert!(matches!(parse_report(raw), Err(ReportError::Malformed(_))));
        // A status without Action or a usable Status, and a boundary that never comes.
        let raw = b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n\
            --b\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@b\n\
            Status: banana\n";
        assert_eq!(parse_report(raw), Err(ReportError::NotAReport));
    }

    #[test]
    fn the_diagnostic_is_bounded_and_on_one_line() {
        let long = "x".repeat(5000);
        let raw = String::from_utf8(fixture("postfix_hard_bounce"))
            .unwrap()
            .replace(
                "Diagnostic-Code: smtp; 550 5.1.1",
                &format!("Diagnostic-Code: smtp; 550 5.1.1 {long}\n  \u{e9}t\u{e9}"),
            );
        let d = parse_report(raw.as_bytes()).unwrap().diagnostic.unwrap();
        assert_eq!(d.chars().count(), MAX_DIAGNOSTIC_CHARS);
        assert!(!d.contains('\n'));
    }

    #[test]
    fn oversized_reports_are_refused_before_reading() {
        let mut raw = fixture("postfix_hard_bounce");
        raw.resize(MAX_REPORT_BYTES + 1, b'x');
        assert_eq!(parse_report(&raw), Err(ReportError::TooLarge));
        assert!(ReportError::TooLarge.is_refusal());
    }

    /// Multiparts nested `levels` deep, each with one child, a text leaf at the bottom.
    fn nested_multiparts(levels: usize) -> Vec<u8> {
        let mut s = String::from("From: MAILER-DAEMON@mx.example\n");
        for i in 0..levels {
            s.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{i}\"\n\n--b{i}\n"
            ));
        }
        s.push_str("Content-Type: text/plain\n\nx\n");
        for i in (0..levels).rev() {
            s.push_str(&format!("--b{i}--\n"));
        }
        s.into_bytes()
    }

    #[test]
    fn deep_nesting_is_refused() {
        assert_eq!(
            parse_report(&nested_multiparts(MAX_MIME_DEPTH)),
            Err(ReportError::NotAReport),
            "at the limit it is read"
        );
        assert_eq!(
            parse_report(&nested_multiparts(MAX_MIME_DEPTH + 1)),
            Err(ReportError::TooDeep)
        );
        // As deep as 1 MiB allows: refused, quickly, without running out of stack.
        let mut levels = 1000;
        while nested_multiparts(levels * 2).len() <= MAX_REPORT_BYTES {
            levels *= 2;
        }
        let bomb = nested_multiparts(levels);
        let started = std::time::Instant::now();
        assert_eq!(parse_report(&bomb), Err(ReportError::TooDeep));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn nested_attached_messages_are_not_descended_into() {
        // mail-parser recurses into message/rfc822 parts; tens of thousands of them
        // overflow its stack. Only the first attached message's headers are read here.
        let mut bomb = fixture("exim_dsn");
        let layer = b"Content-Type: message/rfc822\n\n";
        while bomb.len() + layer.len() < MAX_REPORT_BYTES {
            bomb.extend_from_slice(layer);
        }
        let joined = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || parse_report(&bomb).map(|r| r.kind))
            .unwrap()
            .join();
        assert_eq!(joined.unwrap(), Ok(ReportKind::Bounce { permanent: true }));
    }

    #[test]
    fn many_parts_are_refused() {
        let report = |parts: usize| {
            let mut s = String::from(
                "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n",
            );
            s.push_str(
                "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n\
                 Final-Recipient: rfc822; a@example.com\nAction: failed\nStatus: 5.1.1\n",
            );
            for _ in 1..parts {
                s.push_str("--b\nContent-Type: text/plain\n\nfiller\n");
            }
            s.push_str("--b--\n");
            s.into_bytes()
        };
        // The top-level message counts as one part.
        assert!(parse_report(&report(MAX_MIME_PARTS - 1)).is_ok());
        assert_eq!(
            parse_report(&report(MAX_MIME_PARTS)),
            Err(ReportError::TooManyParts)
        );
        // Spread over levels, the parts are counted all together.
        let mut s = String::from("Content-Type: multipart/mixed; boundary=top\n\n");
        for i in 0..30 {
            s.push_str(&format!(
                "--top\nContent-Type: multipart/mixed; boundary=in{i}\n\n\
                 --in{i}\n\na\n--in{i}\n\nb\n--in{i}\n\nc\n--in{i}--\n"
            ));
        }
        s.push_str("--top--\n");
        assert_eq!(parse_report(s.as_bytes()), Err(ReportError::TooManyParts));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 256,
            ..ProptestConfig::default()
        });
        let raw = fixture("gmail_bounce");
        runner
            .run(
                &(0..raw.len(), proptest::collection::vec(any::<u8>(), 0..64)),
                |(at, junk)| {
                    let mut mutated = raw.clone();
                    mutated.splice(at..(at + junk.len()).min(raw.len()), junk);
                    let _ = parse_report(&mutated);
                    Ok(())
                },
            )
            .unwrap();
    }
}
