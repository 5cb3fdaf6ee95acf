//! Several invoices printed as one Chromium document, then split into one
//! PDF each (`[render] batch`, docs/DOCUMENTS.md "Printing").
//!
//! Chromium costs about half the CPU a page when many invoices are printed
//! as one document (one load, one PDF compositor): docs/PERFORMANCE.md.
//! Two things make the split work:
//!
//! - **Where each invoice starts.** Each invoice is preceded by an empty
//!   marker `<div id="mvnobill-invoice-K">` that starts a new page, and an
//!   empty link to it. Chromium turns every link target into a named
//!   destination of the PDF (`/Dests`, name → page): invoice K's first page.
//! - **Its own page numbers.** Chromium's `counter(page)` counts the whole
//!   document and cannot be reset per invoice. So the template's
//!   `counter(page)` and `counter(pages)` are replaced by two placeholder
//!   numbers that together hold every digit ([`PAGE_PLACEHOLDER`],
//!   [`COUNT_PLACEHOLDER`]): Chromium prints them, which puts the glyph of
//!   each digit in the embedded font subset. Each page's placeholders are
//!   then rewritten into its own numbers, with the glyph ids of that same
//!   font (read from its `/ToUnicode` map), and the line is moved by the
//!   width it lost (from the font's `/W` widths) so that its right end stays
//!   where it was (the default template's numbers are right-aligned). No
//!   font is added: the PDF/A-3 of Factur-X stays fully embedded.
//!
//! What cannot be batched is printed one invoice at a time, as with
//! `batch = 1`: pages whose `<head>` differ beyond their `<title>`, a
//! template with `@page :first`, `:left`, `:right` or `:blank` rules (they
//! would apply to the batch's pages, not each invoice's), a page counter
//! written another way than `counter(page)` or `counter(pages)`, and a
//! printed batch whose markers or placeholders are not all found.

use crate::core::text::one_line;
use std::collections::{BTreeMap, HashMap, HashSet};

use lopdf::content::{Content, Operation};
use lopdf::{dictionary, Dictionary, Document, Object, ObjectId};

/// Invoices a Chromium document by default (docs/PERFORMANCE.md).
pub const DEFAULT_BATCH: usize = 25;

/// The most invoices `[render] batch` accepts in one document: the most
/// measured, and a document must print within the printer's time limit.
pub const MAX_BATCH: usize = 50;

/// What `counter(page)` prints in a batch, rewritten per page: every digit
/// once, an order no invoice shows.
pub const PAGE_PLACEHOLDER: &str = "9081726354";

/// What `counter(pages)` prints in a batch, rewritten per invoice.
pub const COUNT_PLACEHOLDER: &str = "4536271809";

/// The id of invoice K's marker, and its named destination in the PDF.
const MARKER: &str = "mvnobill-invoice-";

/// Why a printed batch could not be split; its invoices are then printed
/// one at a time.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("the batch's PDF does not load: {0}")]
    Load(String),
    #[error("the batch's PDF has no page for the start of invoice {0}")]
    Marker(usize),
    #[error("invoice {invoice} of the batch starts on page {page}, not after the previous one")]
    Order { invoice: usize, page: u32 },
    #[error("page {0} of the batch: its page numbers were not found")]
    Numbers(u32),
    #[error("page {page} of the batch: {message}")]
    Content { page: u32, message: String },
    #[error("writing a split PDF: {0}")]
    Write(String),
}

/// The invoices of a batch as one HTML document, and what the split needs.
pub struct Batch {
    html: String,
    layout: Layout,
}

/// What the split of a printed batch checks and sets.
pub struct Layout {
    /// Each invoice's `<title>`: the title of its PDF, as Chromium sets it.
    titles: Vec<String>,
    /// The template prints `counter(page)`: every page must have its
    /// placeholder rewritten.
    page_numbers: bool,
    /// Same for `counter(pages)`.
    page_counts: bool,
}

impl Batch {
    /// The HTML to print, and the layout to split its PDF with.
    pub fn into_parts(self) -> (String, Layout) {
        (self.html, self.layout)
    }
}

/// The pages of several invoices made by the same template, as one
/// document: the first page's `<head>` and `<body>` tag, then each page's
/// body after a marker that starts a new page. `None` when they cannot be
/// batched (see the module's documentation): print them one at a time.
pub fn compose(pages: &[&str]) -> Option<Batch> {
    let mut head: Option<String> = None;
    let mut titles = Vec::with_capacity(pages.len());
    let mut bodies = Vec::with_capacity(pages.len());
    for page in pages {
        let (page_head, title, body) = parts(page)?;
        match &head {
            None => head = Some(page_head),
            Some(first) if *first == page_head => {}
            Some(_) => return None,
        }
        titles.push(title);
        bodies.push(body);
    }
    let head = head?;
    if head.contains(MARKER) || has_page_selector(&head) {
        return None;
    }
    let page_numbers = head.contains("counter(page)");
    let page_counts = head.contains("counter(pages)");
    let head = head
        .replace("counter(pages)", &format!("\"{COUNT_PLACEHOLDER}\""))
        .replace("counter(page)", &format!("\"{PAGE_PLACEHOLDER}\""));
    if mentions_page_counter(&head) {
        return None;
    }
    let size = head.len() + bodies.iter().map(|b| b.len() + 200).sum::<usize>();
    let mut html = String::with_capacity(size);
    html.push_str(&head);
    for (k, body) in bodies.iter().enumerate() {
        // A page counter in the body's own styles would count the batch.
        if body.contains(MARKER) || mentions_page_counter(body) {
            return None;
        }
        let new_page = if k == 0 { "" } else { "break-before:page;" };
        html.push_str(&format!(
            "<div id=\"{MARKER}{k}\" style=\"{new_page}height:0;margin:0;padding:0;border:0\">\
             <a href=\"#{MARKER}{k}\"></a></div>"
        ));
        html.push_str(body);
    }
    html.push_str("</body></html>");
    Some(Batch {
        html,
        layout: Layout {
            titles,
            page_numbers,
            page_counts,
        },
    })
}

/// A page's text up to its `<body …>` tag with the `<title>` element taken
/// out, its title's text, and what its body holds.
fn parts(page: &str) -> Option<(String, String, &str)> {
    let lower = page.to_ascii_lowercase();
    let body_tag = lower.find("<body")?;
    let body_start = body_tag + lower[body_tag..].find('>')? + 1;
    let body_end = lower.rfind("</body")?;
    if body_end < body_start {
        return None;
    }
    let mut head = page[..body_start].to_string();
    let mut title = String::new();
    if let Some(open) = lower[..body_start].find("<title") {
        let text_start = open + lower[open..].find('>')? + 1;
        let close = text_start + lower[text_start..body_start].find("</title>")?;
        title = unescape(&page[text_start..close]);
        head.replace_range(open..close + "</title>".len(), "");
    }
    Some((head, title, &page[body_start..body_end]))
}

/// The text of an HTML title (the escapes minijinja writes).
fn unescape(text: &str) -> String {
    text.trim()
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

/// An `@page` rule with a page selector (`:first`, `:left`, …).
fn has_page_selector(css: &str) -> bool {
    let lower = css.to_ascii_lowercase();
    lower.match_indices("@page").any(|(at, _)| {
        let rest = &lower[at + "@page".len()..];
        rest[..rest.find('{').unwrap_or(rest.len())].contains(':')
    })
}

/// `counter(page …)` or `counter(pages …)` still written some other way
/// (`counter( page )`, a list style): it would count the whole batch.
fn mentions_page_counter(css: &str) -> bool {
    let lower = css.to_ascii_lowercase();
    lower.match_indices("counter").any(|(at, _)| {
        let rest = lower[at + "counter".len()..].trim_start();
        rest.strip_prefix('(')
            .is_some_and(|inner| inner.trim_start().starts_with("page"))
    })
}

/// Splits the PDF Chromium printed for `layout`'s batch into one PDF per
/// invoice, in the batch's order, each page numbered within its invoice.
pub fn split(pdf: &[u8], layout: &Layout) -> Result<Vec<Vec<u8>>, SplitError> {
    let mut doc =
        Document::load_mem(pdf).map_err(|e| SplitError::Load(one_line(&e.to_string())))?;
    let pages: BTreeMap<u32, ObjectId> = doc.get_pages();
    let starts = invoice_starts(&doc, &pages, layout.titles.len())?;
    let last_page = pages.keys().next_back().copied().unwrap_or(0);
    let mut fonts = Fonts::default();
    let mut out = Vec::with_capacity(starts.len());
    for (k, &first) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(last_page, |next| next - 1);
        let count = end + 1 - first;
        let mut ids = Vec::with_capacity(count as usize);
        for number in first..=end {
            let id = pages[&number];
            let (numbers, counts) =
                number_page(&mut doc, &mut fonts, id, number - first + 1, count).map_err(
                    |message| SplitError::Content {
                        page: number,
                        message,
                    },
                )?;
            if (layout.page_numbers && numbers == 0) || (layout.page_counts && counts == 0) {
                return Err(SplitError::Numbers(number));
            }
            ids.push(id);
        }
        out.push(extract(&doc, &ids, &layout.titles[k])?);
    }
    Ok(out)
}

/// The first page of each invoice, from the markers' named destinations.
fn invoice_starts(
    doc: &Document,
    pages: &BTreeMap<u32, ObjectId>,
    invoices: usize,
) -> Result<Vec<u32>, SplitError> {
    let number_of: HashMap<ObjectId, u32> = pages.iter().map(|(n, id)| (*id, *n)).collect();
    let dests = doc
        .catalog()
        .ok()
        .and_then(|catalog| catalog.get(b"Dests").ok())
        .and_then(|dests| doc.dereference(dests).ok())
        .and_then(|(_, dests)| dests.as_dict().ok());
    let mut starts = Vec::with_capacity(invoices);
    for k in 0..invoices {
        let name = format!("{MARKER}{k}");
        let page = dests
            .and_then(|dests| dests.get(name.as_bytes()).ok())
            .and_then(|dest| doc.dereference(dest).ok())
            .and_then(|(_, dest)| match dest {
                // `[page /XYZ left top zoom]`, or a dictionary holding it.
                Object::Array(array) => Some(array),
                Object::Dictionary(dict) => dict.get(b"D").ok()?.as_array().ok(),
                _ => None,
            })
            .and_then(|array| array.first())
            .and_then(|page| page.as_reference().ok())
            .and_then(|id| number_of.get(&id).copied())
            .ok_or(SplitError::Marker(k))?;
        let expected_after = starts.last().copied().unwrap_or(0);
        if (k == 0 && page != 1) || page <= expected_after {
            return Err(SplitError::Order { invoice: k, page });
        }
        starts.push(page);
    }
    Ok(starts)
}

// ---- Page numbers -----------------------------------------------------

/// What the rewrite needs of a font: the glyph id of each digit and the
/// glyphs' widths. Only Type0 fonts with 2-byte glyph ids (`Identity-H`, as
/// Chromium embeds every font) qualify.
struct DigitFont {
    /// Glyph id of `0`..`9`.
    digits: [u16; 10],
    /// Width of a glyph (thousandths of the font size), `/W` then `/DW`.
    widths: HashMap<u16, f32>,
    default_width: f32,
    /// The glyph codes of [`PAGE_PLACEHOLDER`] and [`COUNT_PLACEHOLDER`].
    placeholders: [Vec<u8>; 2],
    /// Both as a content stream writes them (`<00130014…>`), lower and
    /// upper case.
    hex: Vec<Vec<u8>>,
}

impl DigitFont {
    fn width(&self, glyph: u16) -> f32 {
        self.widths
            .get(&glyph)
            .copied()
            .unwrap_or(self.default_width)
    }

    /// The 2-byte glyph codes of a string of digits.
    fn codes(&self, digits: &str) -> Vec<u8> {
        digits
            .bytes()
            .flat_map(|d| self.digits[usize::from(d - b'0')].to_be_bytes())
            .collect()
    }
}

/// The fonts of the batch, read once each.
#[derive(Default)]
struct Fonts {
    read: HashMap<ObjectId, Option<DigitFont>>,
}

impl Fonts {
    fn get(&mut self, doc: &Document, id: ObjectId) -> Option<&DigitFont> {
        self.read
            .entry(id)
            .or_insert_with(|| digit_font(doc, id))
            .as_ref()
    }
}

fn digit_font(doc: &Document, id: ObjectId) -> Option<DigitFont> {
    let font = doc.get_dictionary(id).ok()?;
    if font.get(b"Subtype").ok()?.as_name().ok()? != b"Type0"
        || font.get(b"Encoding").ok()?.as_name().ok()? != b"Identity-H"
    {
        return None;
    }
    let (_, to_unicode) = doc.dereference(font.get(b"ToUnicode").ok()?).ok()?;
    let cmap = to_unicode.as_stream().ok()?.decompressed_content().ok()?;
    let digits = digit_glyphs(&cmap)?;
    let (_, descendants) = doc.dereference(font.get(b"DescendantFonts").ok()?).ok()?;
    let (_, cid_font) = doc
        .dereference(descendants.as_array().ok()?.first()?)
        .ok()?;
    let cid_font = cid_font.as_dict().ok()?;
    let default_width = cid_font.get(b"DW").ok().and_then(as_f32).unwrap_or(1000.0);
    let widths = match cid_font.get(b"W") {
        Ok(w) => glyph_widths(doc.dereference(w).ok()?.1.as_array().ok()?)?,
        Err(_) => HashMap::new(),
    };
    let mut font = DigitFont {
        digits,
        widths,
        default_width,
        placeholders: [Vec::new(), Vec::new()],
        hex: Vec::new(),
    };
    font.placeholders = [font.codes(PAGE_PLACEHOLDER), font.codes(COUNT_PLACEHOLDER)];
    for codes in &font.placeholders {
        let lower: Vec<u8> = codes
            .iter()
            .flat_map(|b| format!("{b:02x}").into_bytes())
            .collect();
        font.hex.push(lower.to_ascii_uppercase());
        font.hex.push(lower);
    }
    Some(font)
}

fn as_f32(object: &Object) -> Option<f32> {
    match object {
        Object::Integer(i) => Some(*i as f32),
        Object::Real(r) => Some(*r),
        _ => None,
    }
}

/// A CIDFont's `/W`: `c [w1 w2 …]` (widths from glyph c on) or
/// `c_first c_last w`.
fn glyph_widths(w: &[Object]) -> Option<HashMap<u16, f32>> {
    let mut widths = HashMap::new();
    let mut i = 0;
    while i < w.len() {
        let first = u16::try_from(w[i].as_i64().ok()?).ok()?;
        match w.get(i + 1)? {
            Object::Array(list) => {
                for (offset, width) in list.iter().enumerate() {
                    widths.insert(first.checked_add(offset as u16)?, as_f32(width)?);
                }
                i += 2;
            }
            last => {
                let last = u16::try_from(last.as_i64().ok()?).ok()?;
                let width = as_f32(w.get(i + 2)?)?;
                for glyph in first..=last {
                    widths.insert(glyph, width);
                }
                i += 3;
            }
        }
    }
    Some(widths)
}

/// The glyph of each digit in a `/ToUnicode` CMap (`bfchar` and `bfrange`
/// entries), if it has all ten.
fn digit_glyphs(cmap: &[u8]) -> Option<[u16; 10]> {
    let text = String::from_utf8_lossy(cmap);
    let mut found: [Option<u16>; 10] = [None; 10];
    let mut note = |glyph: u32, unicode: u32| {
        if let (Some(d), Ok(glyph)) = (unicode.checked_sub(0x30), u16::try_from(glyph)) {
            if d < 10 && found[d as usize].is_none() {
                found[d as usize] = Some(glyph);
            }
        }
    };
    let tokens = cmap_tokens(&text);
    let mut section = "";
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i] {
            "beginbfchar" | "beginbfrange" => section = tokens[i],
            "endbfchar" | "endbfrange" => section = "",
            _ if section == "beginbfchar" && i + 1 < tokens.len() => {
                if let (Some(glyph), Some(unicode)) = (hex(tokens[i]), hex(tokens[i + 1])) {
                    note(glyph, unicode);
                }
                i += 1;
            }
            _ if section == "beginbfrange" && i + 2 < tokens.len() => {
                let (Some(low), Some(high)) = (hex(tokens[i]), hex(tokens[i + 1])) else {
                    i += 1;
                    continue;
                };
                if tokens[i + 2] == "[" {
                    // One destination a glyph: `<lo> <hi> [<u1> <u2> …]`.
                    let mut j = i + 3;
                    let mut glyph = low;
                    while j < tokens.len() && tokens[j] != "]" {
                        if let Some(unicode) = hex(tokens[j]) {
                            note(glyph, unicode);
                        }
                        glyph += 1;
                        j += 1;
                    }
                    i = j;
                } else if let Some(start) = hex(tokens[i + 2]) {
                    for glyph in low..=high.min(low + 0xFFFF) {
                        note(glyph, start + (glyph - low));
                    }
                    i += 2;
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut digits = [0u16; 10];
    for (d, glyph) in found.iter().enumerate() {
        digits[d] = (*glyph)?;
    }
    Some(digits)
}

/// A CMap's tokens: `<hex>`, `[`, `]` and words.
fn cmap_tokens(text: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b if b.is_ascii_whitespace() => i += 1,
            b'<' if bytes.get(i + 1) != Some(&b'<') => {
                let end = text[i..].find('>').map_or(bytes.len(), |e| i + e + 1);
                tokens.push(&text[i..end]);
                i = end;
            }
            b'[' | b']' => {
                tokens.push(&text[i..i + 1]);
                i += 1;
            }
            _ => {
                let end = text[i..]
                    .find(|c: char| c.is_ascii_whitespace() || "<>[]".contains(c))
                    .map_or(bytes.len(), |e| i + e.max(1));
                tokens.push(&text[i..end]);
                i = end;
            }
        }
    }
    tokens
}

/// `<0030>` → 0x30 (a destination of one UTF-16 unit, or a code).
fn hex(token: &str) -> Option<u32> {
    let digits = token.strip_prefix('<')?.strip_suffix('>')?;
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// Rewrites the placeholders of one page into `number` and `count`. Returns
/// how many of each were rewritten. Only the text objects (`BT` … `ET`)
/// that show a placeholder are decoded and written again: the rest of the
/// page's content is kept as Chromium wrote it.
fn number_page(
    doc: &mut Document,
    fonts: &mut Fonts,
    page_id: ObjectId,
    number: u32,
    count: u32,
) -> Result<(usize, usize), String> {
    let font_ids = page_font_ids(doc, page_id);
    let mut content = doc.get_page_content(page_id);
    let mut objects: Vec<(usize, usize)> = Vec::new();
    for (_, id) in &font_ids {
        let Some(font) = fonts.get(doc, *id) else {
            continue;
        };
        for pattern in &font.hex {
            for at in find_all(&content, pattern) {
                let object = text_object(&content, at)
                    .ok_or("a page number outside a text object (BT … ET)")?;
                if !objects.contains(&object) {
                    objects.push(object);
                }
            }
        }
    }
    objects.sort_unstable();
    let mut rewritten = (0, 0);
    // From the end, so that the offsets before stay right.
    for (start, end) in objects.into_iter().rev() {
        let mut ops = Content::decode(&content[start..end])
            .map_err(|e| {
                format!(
                    "its page numbers do not decode: {}",
                    one_line(&e.to_string())
                )
            })?
            .operations;
        let (name, size) = ops
            .iter()
            .find(|op| op.operator == "Tf")
            .and_then(|op| {
                let name = op.operands.first()?.as_name().ok()?;
                Some((name.to_vec(), as_f32(op.operands.get(1)?)?))
            })
            .ok_or("its page numbers do not set their font")?;
        let font = font_ids
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, id)| fonts.get(doc, *id))
            .ok_or("its page numbers are not in a font with every digit")?;
        let done = number_block(&mut ops, font, size, number, count);
        if done != (0, 0) {
            let bytes = Content { operations: ops }.encode().map_err(|e| {
                format!(
                    "its page numbers do not encode: {}",
                    one_line(&e.to_string())
                )
            })?;
            content.splice(start..end, bytes);
            rewritten.0 += done.0;
            rewritten.1 += done.1;
        }
    }
    if rewritten != (0, 0) {
        doc.change_page_content(page_id, content).map_err(|e| {
            format!(
                "its content cannot be replaced: {}",
                one_line(&e.to_string())
            )
        })?;
    }
    Ok(rewritten)
}

/// Where `pattern` occurs in `bytes`: with the standard library's
/// substring search when both are text (Chromium's content streams are),
/// many times faster than comparing at every position.
fn find_all(bytes: &[u8], pattern: &[u8]) -> Vec<usize> {
    match (std::str::from_utf8(bytes), std::str::from_utf8(pattern)) {
        (Ok(text), Ok(pattern)) => text.match_indices(pattern).map(|(at, _)| at).collect(),
        _ => bytes
            .windows(pattern.len())
            .enumerate()
            .filter(|(_, window)| *window == pattern)
            .map(|(at, _)| at)
            .collect(),
    }
}

/// The text object (`BT` … `ET`, both included) around position `at`.
fn text_object(content: &[u8], at: usize) -> Option<(usize, usize)> {
    let is_token = |i: usize, token: &[u8]| {
        content[i..].starts_with(token)
            && (i == 0 || content[i - 1].is_ascii_whitespace())
            && content
                .get(i + token.len())
                .is_none_or(|b| b.is_ascii_whitespace())
    };
    let start = (0..at).rev().find(|&i| is_token(i, b"BT"))?;
    let end = (start..content.len().saturating_sub(1)).find(|&i| is_token(i, b"ET"))? + 2;
    (end > at).then_some((start, end))
}

/// Rewrites the placeholders of one text object (`BT` … `ET`, one font),
/// then moves its positioning so that its end stays where it was. Returns
/// how many page numbers and page counts it rewrote.
fn number_block(
    ops: &mut [Operation],
    font: &DigitFont,
    size: f32,
    number: u32,
    count: u32,
) -> (usize, usize) {
    let replacements = [
        (&font.placeholders[0], font.codes(&number.to_string())),
        (&font.placeholders[1], font.codes(&count.to_string())),
    ];
    let width_of = |codes: &[u8]| -> f32 {
        codes
            .chunks(2)
            .map(|pair| font.width(u16::from_be_bytes([pair[0], pair[1]])))
            .sum::<f32>()
            / 1000.0
            * size
    };
    let mut done = (0, 0);
    // The width lost before each operation, in text space.
    let mut lost_before = vec![0f32; ops.len()];
    let mut lost = 0f32;
    for (i, op) in ops.iter_mut().enumerate() {
        lost_before[i] = lost;
        if op.operator != "Tj" && op.operator != "TJ" {
            continue;
        }
        let strings: Vec<&mut Vec<u8>> = match op.operands.first_mut() {
            Some(Object::String(bytes, _)) if op.operator == "Tj" => vec![bytes],
            Some(Object::Array(items)) if op.operator == "TJ" => items
                .iter_mut()
                .filter_map(|item| match item {
                    Object::String(bytes, _) => Some(bytes),
                    _ => None,
                })
                .collect(),
            _ => continue,
        };
        for bytes in strings {
            for (which, (from, to)) in replacements.iter().enumerate() {
                while let Some(at) = find_glyphs(bytes, from) {
                    bytes.splice(at..at + from.len(), to.iter().copied());
                    lost += width_of(from) - width_of(to);
                    if which == 0 {
                        done.0 += 1;
                    } else {
                        done.1 += 1;
                    }
                }
            }
        }
    }
    if done == (0, 0) {
        return done;
    }
    // Right-aligned: every glyph moves right by what was lost after it.
    // A `Tm` is absolute: moved by what is lost after it.
    for (i, op) in ops.iter_mut().enumerate() {
        let shift_here = lost - lost_before[i];
        match op.operator.as_str() {
            "Tm" if op.operands.len() == 6 => {
                let m: Vec<f32> = op.operands.iter().filter_map(as_f32).collect();
                if m.len() == 6 {
                    op.operands[4] = Object::Real(m[4] + m[0] * shift_here);
                    op.operands[5] = Object::Real(m[5] + m[1] * shift_here);
                }
            }
            _ => {}
        }
    }
    shift_relative_moves(ops, &lost_before);
    done
}

/// A `Td`/`TD` moves from the previous line start: text that shrank since
/// that start moves the line back by as much.
fn shift_relative_moves(ops: &mut [Operation], lost_before: &[f32]) {
    let mut line_start_lost = 0f32;
    for (i, op) in ops.iter_mut().enumerate() {
        match op.operator.as_str() {
            "Tm" => line_start_lost = lost_before[i],
            "Td" | "TD" if op.operands.len() == 2 => {
                let shrunk = lost_before[i] - line_start_lost;
                if shrunk != 0.0 {
                    if let Some(tx) = as_f32(&op.operands[0]) {
                        op.operands[0] = Object::Real(tx - shrunk);
                    }
                }
                line_start_lost = lost_before[i];
            }
            _ => {}
        }
    }
}

/// Where a glyph sequence starts in a string of 2-byte codes.
fn find_glyphs(bytes: &[u8], glyphs: &[u8]) -> Option<usize> {
    (0..bytes.len().checked_sub(glyphs.len())? + 1)
        .step_by(2)
        .find(|&at| &bytes[at..at + glyphs.len()] == glyphs)
}

/// The page's font resources: name → object.
fn page_font_ids(doc: &Document, page_id: ObjectId) -> Vec<(Vec<u8>, ObjectId)> {
    let Ok((inline, resource_ids)) = doc.get_page_resources(page_id) else {
        return Vec::new();
    };
    let mut dictionaries: Vec<&Dictionary> = inline.into_iter().collect();
    dictionaries.extend(
        resource_ids
            .iter()
            .filter_map(|id| doc.get_dictionary(*id).ok()),
    );
    let mut fonts = Vec::new();
    for resources in dictionaries {
        let Some(font_dict) = resources
            .get(b"Font")
            .ok()
            .and_then(|f| doc.dereference(f).ok())
            .and_then(|(_, f)| f.as_dict().ok())
        else {
            continue;
        };
        for (name, font) in font_dict.iter() {
            if let Ok(id) = font.as_reference() {
                if !fonts.iter().any(|(n, _): &(Vec<u8>, ObjectId)| n == name) {
                    fonts.push((name.clone(), id));
                }
            }
        }
    }
    fonts
}

// ---- One PDF per invoice ---------------------------------------------

/// A new PDF of the given pages of `doc`, with what they refer to (fonts,
/// images), Chromium's catalog entries and Info, titled `title`.
fn extract(doc: &Document, page_ids: &[ObjectId], title: &str) -> Result<Vec<u8>, SplitError> {
    let mut out = Document::with_version(doc.version.clone());
    let all_pages: HashSet<ObjectId> = doc.get_pages().into_values().collect();
    let mut copier = Copier {
        source: doc,
        all_pages: &all_pages,
        map: HashMap::new(),
    };
    let pages_id = out.new_object_id();
    for id in page_ids {
        let new = out.new_object_id();
        copier.map.insert(*id, new);
    }
    for id in page_ids {
        let mut page = doc
            .get_dictionary(*id)
            .map_err(|e| SplitError::Write(one_line(&e.to_string())))?
            .clone();
        page.remove(b"Parent");
        // Inherited from the batch's page tree: set on the page itself.
        for key in [b"Resources".as_slice(), b"MediaBox", b"CropBox", b"Rotate"] {
            if !page.has(key) {
                if let Ok(value) = inherited(doc, *id, key) {
                    page.set(key.to_vec(), value);
                }
            }
        }
        let mut page = copier.remap(&mut out, Object::Dictionary(page));
        if let Object::Dictionary(dict) = &mut page {
            dict.set("Parent", pages_id);
        }
        out.objects.insert(copier.map[id], page);
    }
    let kids: Vec<Object> = page_ids
        .iter()
        .map(|id| Object::Reference(copier.map[id]))
        .collect();
    out.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => page_ids.len() as i64,
        }),
    );
    let mut catalog = Dictionary::new();
    if let Ok(source) = doc.catalog() {
        for (key, value) in source.iter() {
            // The batch's page tree, destinations and outlines are its own.
            if matches!(
                key.as_slice(),
                b"Pages" | b"Dests" | b"Names" | b"Outlines" | b"StructTreeRoot" | b"PageLabels"
            ) {
                continue;
            }
            let value = copier.remap(&mut out, value.clone());
            catalog.set(key.clone(), value);
        }
    }
    catalog.set("Type", "Catalog");
    catalog.set("Pages", pages_id);
    let catalog_id = out.add_object(catalog);
    out.trailer.set("Root", catalog_id);
    let mut info = doc
        .trailer
        .get(b"Info")
        .ok()
        .and_then(|i| doc.dereference(i).ok())
        .and_then(|(_, i)| i.as_dict().ok())
        .cloned()
        .unwrap_or_default();
    info.set("Title", lopdf::text_string(title));
    let info = copier.remap(&mut out, Object::Dictionary(info));
    let info_id = out.add_object(info);
    out.trailer.set("Info", info_id);
    let mut bytes = Vec::new();
    out.save_to(&mut bytes)
        .map_err(|e| SplitError::Write(one_line(&e.to_string())))?;
    Ok(bytes)
}

/// A page attribute from the page or the page tree above it.
fn inherited(doc: &Document, page_id: ObjectId, key: &[u8]) -> lopdf::Result<Object> {
    let mut node = doc.get_dictionary(page_id)?;
    for _ in 0..32 {
        if let Ok(value) = node.get(key) {
            return Ok(value.clone());
        }
        node = doc.get_dictionary(node.get(b"Parent")?.as_reference()?)?;
    }
    Err(lopdf::Error::ObjectNotFound((0, 0)))
}

/// Copies objects of the batch into a split PDF, each once, with new ids.
struct Copier<'a> {
    source: &'a Document,
    all_pages: &'a HashSet<ObjectId>,
    map: HashMap<ObjectId, ObjectId>,
}

impl Copier<'_> {
    /// The object with its references pointing to the copies (made as
    /// needed). A reference to a page of another invoice becomes null.
    fn remap(&mut self, out: &mut Document, object: Object) -> Object {
        match object {
            Object::Reference(id) => match self.map.get(&id) {
                Some(new) => Object::Reference(*new),
                None if self.all_pages.contains(&id) => Object::Null,
                None => match self.source.get_object(id) {
                    Ok(target) => {
                        let new = out.new_object_id();
                        self.map.insert(id, new);
                        let copy = self.remap(out, target.clone());
                        out.objects.insert(new, copy);
                        Object::Reference(new)
                    }
                    Err(_) => Object::Null,
                },
            },
            Object::Array(items) => Object::Array(
                items
                    .into_iter()
                    .map(|item| self.remap(out, item))
                    .collect(),
            ),
            Object::Dictionary(dict) => Object::Dictionary(self.remap_dict(out, dict)),
            Object::Stream(mut stream) => {
                stream.dict = self.remap_dict(out, stream.dict);
                Object::Stream(stream)
            }
            other => other,
        }
    }

    fn remap_dict(&mut self, out: &mut Document, dict: Dictionary) -> Dictionary {
        let mut copy = Dictionary::new();
        for (key, value) in dict.into_iter() {
            let value = self.remap(out, value);
            copy.set(key, value);
        }
        copy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::chrome::tests::poppler;
    use crate::documents::chrome::{Printer, PrinterOptions};

    /// A page as the invoice template makes one: A4, numbers in the bottom
    /// right margin box, `lines` paragraphs of body.
    fn page(title: &str, lines: usize) -> String {
        let body: String = (1..=lines)
            .map(|i| format!("<p>{title} ligne {i}</p>"))
            .collect();
        format!(
            "<!DOCTYPE html>\n<html lang=\"fr\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>Facture {title}</title>\n<style>\
             @page {{ size: A4; margin: 12mm 14mm 30mm 14mm; \
             @bottom-right {{ content: \"Page \" counter(page) \" / \" counter(pages); \
             font: 7.5pt \"DejaVu Sans\", sans-serif }} }}\
             html {{ font: 9pt/1.35 \"DejaVu Sans\", sans-serif }} p {{ margin: 0 0 4mm }}\
             </style>\n</head>\n<body>\n<h1>{title}</h1>{body}\n</body>\n</html>\n"
        )
    }

    fn page_count(pdf: &[u8]) -> usize {
        poppler("pdfinfo", &[], pdf)
            .lines()
            .find_map(|l| l.strip_prefix("Pages:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("pdfinfo gives the pages")
    }

    /// The right end of the `Page i / n` line of each page, in points.
    fn number_ends(pdf: &[u8]) -> Vec<f64> {
        let bbox = poppler("pdftotext", &["-bbox"], pdf);
        let words: Vec<(f64, String)> = bbox
            .lines()
            .filter_map(|l| {
                let x = l.split("xMax=\"").nth(1)?.split('"').next()?.parse().ok()?;
                let word = l.split('>').nth(1)?.split('<').next()?.to_string();
                Some((x, word))
            })
            .collect();
        words
            .windows(4)
            .filter(|w| w[0].1 == "Page" && w[2].1 == "/")
            .map(|w| w[3].0)
            .collect()
    }

    #[test]
    fn a_batch_splits_into_invoices_numbered_from_one() {
        let _guard = crate::documents::chrome::tests::ONE_CHROMIUM_AT_A_TIME
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut printer = Printer::launch(&PrinterOptions {
            tabs: 1,
            ..PrinterOptions::default()
        })
        .expect("launch chromium");
        // One page, 12 pages (two-digit numbers), 3 pages.
        let pages = [page("A-1", 3), page("B-2", 500), page("C-3", 110)];
        let refs: Vec<&str> = pages.iter().map(String::as_str).collect();
        let (html, layout) = compose(&refs).expect("the pages batch").into_parts();
        assert!(html.contains(&format!("\"{PAGE_PLACEHOLDER}\"")));
        let batch = printer.print(&html).expect("print the batch");
        let pdfs = split(&batch, &layout).expect("the batch splits");
        assert_eq!(pdfs.len(), 3);
        for (pdf, source) in pdfs.iter().zip(&pages) {
            // Each invoice as many pages as printed alone, and the same
            // place for its page numbers.
            let alone = printer.print(source).expect("print alone");
            let count = page_count(pdf);
            assert_eq!(count, page_count(&alone));
            for number in 1..=count {
                let n = number.to_string();
                let text = poppler("pdftotext", &["-f", &n, "-l", &n], pdf);
                assert!(
                    text.contains(&format!("Page {number} / {count}")),
                    "page {number} of {count}: {text}"
                );
                assert!(!text.contains(PAGE_PLACEHOLDER) && !text.contains(COUNT_PLACEHOLDER));
            }
            let ends = number_ends(pdf);
            let ends_alone = number_ends(&alone);
            assert_eq!(ends.len(), count);
            for (end, wanted) in ends.iter().zip(&ends_alone) {
                assert!(
                    (end - wanted).abs() < 0.1,
                    "{ends:?} against {ends_alone:?}"
                );
            }
        }
        let titles: Vec<String> = pdfs
            .iter()
            .map(|pdf| {
                poppler("pdfinfo", &[], pdf)
                    .lines()
                    .find_map(|l| l.strip_prefix("Title:").map(|t| t.trim().to_string()))
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(titles, ["Facture A-1", "Facture B-2", "Facture C-3"]);
        let first = poppler("pdftotext", &[], &pdfs[1]);
        assert!(first.contains("B-2 ligne 1") && !first.contains("A-1") && !first.contains("C-3"));
        assert_eq!(printer.blocked_requests(), 0);
    }

    #[test]
    fn pages_that_would_print_differently_are_not_batched() {
        let a = page("A", 1);
        let b = page("B", 2);
        assert!(compose(&[&a, &b]).is_some());
        // Heads that differ beyond the title.
        let other_style = b.replace("margin: 0 0 4mm", "margin: 0 0 5mm");
        assert!(compose(&[&a, &other_style]).is_none());
        // A first-page rule would apply to the batch's first page only.
        let first = |p: &str| p.replace("html {", "@page :first { margin-top: 40mm } html {");
        assert!(compose(&[&first(&a), &first(&b)]).is_none());
        // A page counter the placeholders do not replace.
        let roman = |p: &str| p.replace("counter(page)", "counter(page, upper-roman)");
        assert!(compose(&[&roman(&a), &roman(&b)]).is_none());
        // No body.
        assert!(compose(&["<p>a</p>", "<p>b</p>"]).is_none());
    }

    #[test]
    fn reads_digit_glyphs_and_widths_as_chromium_writes_them() {
        let cmap = b"/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
            1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n\
            2 beginbfchar\n<0003> <0020>\n<0013> <0030>\nendbfchar\n\
            2 beginbfrange\n<0014> <0017> <0031>\n<0030> <0034> [<0035> <0036> <0037> <0038> <0039>]\n\
            endbfrange\nendcmap\n";
        let digits = digit_glyphs(cmap).expect("all digits");
        assert_eq!(
            digits,
            [0x13, 0x14, 0x15, 0x16, 0x17, 0x30, 0x31, 0x32, 0x33, 0x34]
        );
        assert!(digit_glyphs(b"beginbfchar\n<0013> <0030>\nendbfchar\n").is_none());
        let w = vec![
            Object::Integer(0),
            Object::Array(vec![Object::Real(600.5), Object::Integer(0)]),
            Object::Integer(19),
            Object::Integer(28),
            Object::Real(636.25),
        ];
        let widths = glyph_widths(&w).expect("widths");
        assert_eq!(widths[&0], 600.5);
        assert_eq!(widths[&1], 0.0);
        assert_eq!(widths[&19], 636.25);
        assert_eq!(widths[&28], 636.25);
        assert!(!widths.contains_key(&29));
    }
}
