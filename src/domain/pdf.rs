//! A minimal one-page PDF writer, for demo rental agreements (text only, Helvetica). The
//! font's WinAnsiEncoding is Windows code page 1252: text is written in it byte for byte, so
//! "Montréal" is `Montr\xE9al` in the file and reads back as it was written.

/// Builds a valid single-page PDF (US Letter) showing `title` and `lines`.
pub fn simple_pdf(title: &str, lines: &[String]) -> Vec<u8> {
    let mut content = b"BT /F1 18 Tf 72 720 Td (".to_vec();
    content.extend(escape(title));
    content.extend_from_slice(b") Tj /F1 11 Tf 0 -28 Td 14 TL ");
    for line in lines {
        content.push(b'(');
        content.extend(escape(line));
        content.extend_from_slice(b") ' ");
    }
    content.extend_from_slice(b"ET");
    let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
    stream.extend_from_slice(&content);
    stream.extend_from_slice(b"\nendstream");
    let objects: [Vec<u8>; 5] = [
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_vec(),
        stream,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_vec(),
    ];
    let mut out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, obj) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(obj);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// The characters of code page 1252's 0x80–0x9F row, in byte order (`None` where the row has
/// none); the rest of the code page is Latin-1, byte for byte.
const CP1252_80: [Option<char>; 32] = [
    Some('€'),
    None,
    Some('‚'),
    Some('ƒ'),
    Some('„'),
    Some('…'),
    Some('†'),
    Some('‡'),
    Some('ˆ'),
    Some('‰'),
    Some('Š'),
    Some('‹'),
    Some('Œ'),
    None,
    Some('Ž'),
    None,
    None,
    Some('‘'),
    Some('’'),
    Some('“'),
    Some('”'),
    Some('•'),
    Some('–'),
    Some('—'),
    Some('˜'),
    Some('™'),
    Some('š'),
    Some('›'),
    Some('œ'),
    None,
    Some('ž'),
    Some('Ÿ'),
];

/// Letters of Latin Extended-A that code page 1252 lacks, each with the letter it is written
/// as (its base letter): "Łódź" prints as "Lódz", which a reader still recognises.
const FOLDED: &str = "ĀAāaĂAăaĄAąaĆCćcĈCĉcĊCċcČCčcĎDďdĐDđdĒEēeĔEĕeĖEėeĘEęeĚEěeĜGĝgĞGğgĠGġgĢGģg\
ĤHĥhĦHħhĨIĩiĪIīiĬIĭiĮIįiİIıiĴJĵjĶKķkĹLĺlĻLļlĽLľlĿLŀlŁLłlŃNńnŅNņnŇNňnŌOōoŎOŏoŐOőo\
ŔRŕrŖRŗrŘRřrŚSśsŜSŝsŞSşsŢTţtŤTťtŦTŧtŨUũuŪUūuŬUŭuŮUůuŰUűuŲUųuŴWŵwŶYŷyŹZźzŻZżzȘSșsȚTțt";

/// The code page 1252 byte of a character, if it has one.
fn cp1252(c: char) -> Option<u8> {
    match c as u32 {
        0x20..=0x7e | 0xa0..=0xff => Some(c as u32 as u8),
        _ => CP1252_80
            .iter()
            .position(|&x| x == Some(c))
            .map(|i| 0x80 + i as u8),
    }
}

/// A character as the PDF string writes it: its code page 1252 byte, escaped where PDF
/// strings need it; else a stand-in (spaces for the other spaces, `-` for the minus and other
/// dashes, the base letter for a Latin letter the code page lacks), else `?`.
fn escape(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        let c = match c {
            '\u{202f}' | '\u{2007}' => '\u{a0}',
            '\u{2000}'..='\u{200a}' | '\t' | '\n' | '\r' => ' ',
            '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2212}' => '-',
            c => FOLDED
                .chars()
                .collect::<Vec<_>>()
                .chunks(2)
                .find(|pair| pair[0] == c)
                .map(|pair| pair[1])
                .unwrap_or(c),
        };
        match cp1252(c) {
            Some(b @ (b'(' | b')' | b'\\')) => out.extend_from_slice(&[b'\\', b]),
            Some(b) => out.push(b),
            None if (c as u32) < 0x20 => out.push(b' '),
            None => out.push(b'?'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(pdf: &[u8]) -> String {
        String::from_utf8_lossy(pdf).into_owned()
    }

    /// The strings shown in the page's content stream, read back through code page 1252.
    fn shown(pdf: &[u8]) -> Vec<String> {
        let start = pdf.windows(7).position(|w| w == b"stream\n").unwrap() + 7;
        let end = pdf.windows(10).position(|w| w == b"\nendstream").unwrap();
        let mut strings = Vec::new();
        let mut current: Option<String> = None;
        let mut bytes = pdf[start..end].iter();
        while let Some(&b) = bytes.next() {
            match (b, current.as_mut()) {
                (b'(', None) => current = Some(String::new()),
                (b')', Some(_)) => strings.push(current.take().unwrap()),
                (b'\\', Some(s)) => s.push(*bytes.next().unwrap() as char),
                (0x80..=0x9f, Some(s)) => s.push(CP1252_80[(b - 0x80) as usize].unwrap()),
                (_, Some(s)) => s.push(b as char),
                _ => {}
            }
        }
        strings
    }

    #[test]
    fn writes_a_pdf_with_a_correct_xref() {
        let pdf = simple_pdf("Rental agreement (B-112)", &["Line one".into()]);
        let text = text(&pdf);
        assert!(text.starts_with("%PDF-1.4"));
        assert!(text.trim_end().ends_with("%%EOF"));
        let startxref: usize = text
            .split("startxref\n")
            .nth(1)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(pdf[startxref..].starts_with(b"xref"));
        assert!(text.contains("\\(B-112\\)"));
        // Each object starts where the table says, counted in bytes.
        let offsets: Vec<usize> = text
            .split("0000000000 65535 f \n")
            .nth(1)
            .unwrap()
            .lines()
            .take(5)
            .map(|l| l[..10].parse().unwrap())
            .collect();
        for (i, off) in offsets.iter().enumerate() {
            assert!(pdf[*off..].starts_with(format!("{} 0 obj", i + 1).as_bytes()));
        }
    }

    #[test]
    fn accented_text_is_written_in_winansi_and_reads_back() {
        let pdf = simple_pdf(
            "Entente de location — Montréal",
            &["Loyer : 129,00\u{a0}$, échéance le 15 « août »; 5×5; 20 € ‘ok’".into()],
        );
        assert!(
            pdf.windows(8).any(|w| w == b"Montr\xE9al"),
            "é is cp1252 0xE9"
        );
        assert!(!text(&pdf).contains("Montr?al"));
        assert!(pdf.windows(3).any(|w| w == b" \x97 "), "— is cp1252 0x97");
        assert_eq!(
            shown(&pdf),
            [
                "Entente de location — Montréal",
                "Loyer : 129,00\u{a0}$, échéance le 15 « août »; 5×5; 20 € ‘ok’"
            ]
        );
        // The stream's length is its byte count.
        let len: usize = text(&pdf)
            .split("/Length ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let start = pdf.windows(7).position(|w| w == b"stream\n").unwrap() + 7;
        assert_eq!(&pdf[start + len..start + len + 10], b"\nendstream");
    }

    #[test]
    fn characters_outside_the_code_page_get_a_sensible_stand_in() {
        let pdf = simple_pdf("Łódź\u{202f}−\u{2009}5 日本", &[]);
        assert_eq!(shown(&pdf), ["Lódz\u{a0}- 5 ??"]);
    }
}
