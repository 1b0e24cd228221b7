//! Enums that travel and are stored as text: one declaration gives each value its text, and the
//! parsing back refuses anything else (an unknown stored value is an error, never a guess).

use std::fmt;

/// A text that names no value of the enum it was read as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    /// The enum's name.
    pub kind: &'static str,
    /// The text (at most 64 characters of it).
    pub value: String,
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}", self.kind, self.value)
    }
}

impl std::error::Error for UnknownValue {}

/// Declares an enum whose values are texts: `as_str`, `ALL`, `FromStr`, `TryFrom<String>` (for
/// reading database columns), `Display`, and comparison with a `&str`.
#[macro_export]
macro_rules! text_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The value's text, on the wire and in the database.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl ::core::str::FromStr for $name {
            type Err = $crate::text::UnknownValue;

            fn from_str(s: &str) -> ::core::result::Result<Self, $crate::text::UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::text::UnknownValue { kind: stringify!($name), value: s.chars().take(64).collect() }),
                }
            }
        }

        impl ::core::convert::TryFrom<String> for $name {
            type Error = $crate::text::UnknownValue;

            fn try_from(s: String) -> ::core::result::Result<Self, $crate::text::UnknownValue> {
                s.parse()
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::core::cmp::PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}
