//! Enums whose values users type and files store (`gcc`, `small-cnn`, `paper`): each name is
//! written once, in the enum's declaration, and `string_enum!` derives from that one table the
//! name, the list of variants, parsing (case-insensitive, with aliases), `Display`, serde
//! (JSON files store the same names) and clap's `ValueEnum` (the command line and its help).

/// The value the environment variable `var` names, if it is set and not blank: how a run
/// forces one of an enum's values (`TAMING_CONV_ALGO`, `TAMING_PRODUCT_ALGO`); the error says
/// the variable, its value and why it does not parse.
pub fn from_env<T>(var: &str) -> Result<Option<T>, String>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<T>()
            .map(Some)
            .map_err(|e| format!("{var}={v}: {e}")),
        _ => Ok(None),
    }
}

/// Declares an enum whose variants are written `Variant = "name"` (or `"name" | "alias"`),
/// with `name()`, `ALL`, `NAMES`, `FromStr`, `Display`, `Serialize`, `Deserialize` and
/// `clap::ValueEnum`. Doc comments on the variants become the command line's help;
/// `enum Name as "what"` names a value in the parse error ("unknown what ...").
macro_rules! string_enum {
    // Without a description, errors call a value by its type's name ("model kind").
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident { $($body:tt)+ }
    ) => {
        $crate::names::string_enum! {
            $(#[$meta])*
            $vis enum $name as "" { $($body)+ }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident as $what:literal {
            $(
                $(#[doc = $doc:literal])*
                $variant:ident = $text:literal $(| $alias:literal)*
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        $vis enum $name {
            $(
                $(#[doc = $doc])*
                $variant,
            )+
        }

        impl $name {
            /// Every variant's name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];
            /// Every variant, in declaration order.
            pub const ALL: [$name; $name::NAMES.len()] = [$($name::$variant),+];

            /// The name users type and files store.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                let lower = s.to_ascii_lowercase();
                $(
                    if lower == $text $(|| lower == $alias)* {
                        return Ok($name::$variant);
                    }
                )+
                let what = match $what {
                    "" => $crate::names::spaced(stringify!($name)),
                    what => what.to_string(),
                };
                Err(format!("unknown {what} {s:?}: use {}", $name::NAMES.join(", ")))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                text.parse()
                    .map_err(|_| serde::de::Error::unknown_variant(&text, $name::NAMES))
            }
        }

        impl clap::ValueEnum for $name {
            fn value_variants<'a>() -> &'a [Self] {
                &$name::ALL
            }
            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                let value = match self {
                    $(
                        $name::$variant => clap::builder::PossibleValue::new($text)
                            $(.alias($alias))*
                            .help($crate::names::help_text(&[$($doc),*])),
                    )+
                };
                Some(value)
            }
        }
    };
}

pub(crate) use string_enum;

/// `ModelKind` as "model kind", for error messages.
pub fn spaced(type_name: &str) -> String {
    let mut out = String::new();
    for (i, c) in type_name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The doc comment's lines joined into one help text.
pub fn help_text(doc: &[&str]) -> String {
    doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    string_enum! {
        /// A test enum.
        pub enum Shade {
            /// Light.
            Light = "light",
            /// Very dark,
            /// two lines.
            DarkGrey = "dark-grey" | "dark-gray",
        }
    }

    #[test]
    fn one_table_gives_names_parsing_serde_and_clap() {
        use clap::ValueEnum;
        assert_eq!(Shade::ALL, [Shade::Light, Shade::DarkGrey]);
        assert_eq!(Shade::DarkGrey.name(), "dark-grey");
        assert_eq!(Shade::DarkGrey.to_string(), "dark-grey");
        for text in ["dark-grey", "Dark-Gray", "DARK-GREY"] {
            assert_eq!(text.parse::<Shade>(), Ok(Shade::DarkGrey));
        }
        let err = "blue".parse::<Shade>().unwrap_err();
        assert_eq!(err, "unknown shade \"blue\": use light, dark-grey");
        assert_eq!(
            serde_json::to_string(&Shade::DarkGrey).unwrap(),
            "\"dark-grey\""
        );
        let back: Shade = serde_json::from_str("\"light\"").unwrap();
        assert_eq!(back, Shade::Light);
        let err = serde_json::from_str::<Shade>("\"blue\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown variant `blue`") && err.contains("dark-grey"),
            "{err}"
        );
        let value = Shade::DarkGrey.to_possible_value().unwrap();
        assert_eq!(value.get_name(), "dark-grey");
        assert!(value.matches("dark-gray", false));
        assert_eq!(
            value.get_help().unwrap().to_string(),
            "Very dark, two lines."
        );
        assert_eq!(Shade::from_str("light", true), Ok(Shade::Light));
    }
}
