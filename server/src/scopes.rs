//! OAuth scopes as a value: granted, requested or missing sets, in the order the provider gave
//! them, stored space-separated (RFC 6749 §3.3) and never handled as a joined string elsewhere.

/// A list of distinct scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// The stored form: space-separated.
    pub fn stored(&self) -> String {
        self.0.join(" ")
    }

    /// The scopes, in order.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// The scopes as the wire carries them.
    pub fn to_vec(&self) -> Vec<String> {
        self.0.clone()
    }

    /// Whether it holds `scope`.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    /// The scopes of `required` that this set lacks.
    pub fn missing(&self, required: &[String]) -> Scopes {
        required.iter().filter(|s| !self.contains(s)).cloned().collect()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<String> for Scopes {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Self {
        let mut scopes = Vec::new();
        for scope in iter {
            if !scope.is_empty() && !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        Self(scopes)
    }
}

/// Reads the stored form (`sqlx(try_from)` uses it through `TryFrom`); an empty string is no
/// scope.
impl From<String> for Scopes {
    fn from(stored: String) -> Self {
        stored.split(' ').map(str::to_owned).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_round_trips_and_drops_empties_and_repeats() {
        let scopes = Scopes::from("a  b a".to_owned());
        assert_eq!(scopes.as_slice(), ["a", "b"]);
        assert_eq!(scopes.stored(), "a b");
        assert!(Scopes::from(String::new()).is_empty());
        assert_eq!(scopes.missing(&["b".into(), "c".into()]).as_slice(), ["c"]);
    }
}
