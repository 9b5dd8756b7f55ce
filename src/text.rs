//! The one rule for showing untrusted text to people, in a terminal or in a
//! merge request note: a character that would act instead of being seen —
//! a control character (C0, DEL, C1: newline, ESC and with it every ANSI
//! CSI and OSC sequence, BEL, the 8-bit CSI and OSC) or a bidirectional
//! formatting character (U+061C, U+200E, U+200F, U+202A–U+202E,
//! U+2066–U+2069), or a line or paragraph separator (U+2028, U+2029) — is
//! shown as its escape (`\n`, `\r`, `\t`, otherwise `\u{1b}`), the way
//! Rust's `escape_default` writes it. Everything else is left as it is.
//!
//! `config::values::quoted` (error messages), `report::Reporter` (stderr),
//! `report::note` (notes, then Markdown-escaped) and the text form of
//! `berth logs` all go through [`visible`] or [`push_visible`]. No I/O.

/// Whether `c` acts on the display instead of being seen.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// Appends `c` to `out`, escaped when it is hidden.
pub fn push_visible(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if is_hidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        c => out.push(c),
    }
}

/// `text` as one line with every hidden character escaped.
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_visible(&mut out, c);
    }
    out
}

/// Like [`visible`], but newlines stay: for messages of several lines that
/// berth itself composed around untrusted parts.
pub fn visible_lines(text: &str) -> String {
    text.split('\n').map(visible).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_escape_and_bidi_characters_show_as_escapes() {
        assert_eq!(visible("x\n\u{1b}]0;title\u{7}"), r"x\n\u{1b}]0;title\u{7}");
        assert_eq!(visible("\u{1b}[31mred\u{1b}[0m"), r"\u{1b}[31mred\u{1b}[0m");
        assert_eq!(
            visible("\u{9b}31m\u{9d}0;t\u{9c}"),
            r"\u{9b}31m\u{9d}0;t\u{9c}"
        );
        assert_eq!(visible("evil\u{202e}gnp.php"), r"evil\u{202e}gnp.php");
        assert_eq!(
            visible("\u{202a}\u{202b}\u{202c}\u{202d}\u{2066}\u{2067}\u{2068}\u{2069}"),
            r"\u{202a}\u{202b}\u{202c}\u{202d}\u{2066}\u{2067}\u{2068}\u{2069}"
        );
        assert_eq!(
            visible("\u{200e}\u{200f}\u{61c}\u{2028}\u{2029}"),
            r"\u{200e}\u{200f}\u{61c}\u{2028}\u{2029}"
        );
        assert_eq!(visible("a\tb\r\0\u{7f}"), r"a\tb\r\u{0}\u{7f}");
        assert_eq!(
            visible("plain: é ü 日本 \\ \" '"),
            "plain: é ü 日本 \\ \" '"
        );
    }

    #[test]
    fn several_lines_keep_their_newlines_only() {
        assert_eq!(
            visible_lines("error: a\u{1b}[2J\n  hint: b\u{202e}\r"),
            "error: a\\u{1b}[2J\n  hint: b\\u{202e}\\r"
        );
    }
}
