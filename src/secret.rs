//! A value that must never be printed: tokens and keys.

use std::fmt;

/// A secret string. `Debug` and `Display` print `[secret]`; only
/// [`Secret::expose`] gives the value, at the one place that sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([secret])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret]")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_and_display_hide_the_value() {
        let token = Secret::new("glpat-abcdefgh12345678");
        assert_eq!(format!("{token:?}"), "Secret([secret])");
        assert_eq!(format!("{token}"), "[secret]");
        assert_eq!(token.expose(), "glpat-abcdefgh12345678");
    }
}
