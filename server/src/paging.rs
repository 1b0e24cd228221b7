//! Paging of every listing: one page-size rule and one cursor rule, so the connection, activity
//! and event listings cannot drift apart.

/// The largest page a listing serves.
pub const MAX_LIMIT: u32 = 200;
/// The page size when the caller names none.
pub const DEFAULT_LIMIT: u32 = 50;

/// A `limit` outside `1..=MAX_LIMIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be between 1 and {MAX_LIMIT}")]
pub struct BadLimit;

/// The page size to serve for a caller's `limit`.
pub fn limit(limit: Option<u32>) -> Result<i64, BadLimit> {
    match limit {
        None => Ok(i64::from(DEFAULT_LIMIT)),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(i64::from(n)),
        Some(_) => Err(BadLimit),
    }
}

/// Truncates a `limit + 1` result to `limit` and returns the cursor of the next page.
pub fn next_cursor<T>(rows: &mut Vec<T>, limit: i64, id: impl Fn(&T) -> String) -> Option<String> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(id)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors() {
        assert_eq!(limit(None), Ok(50));
        assert_eq!(limit(Some(200)), Ok(200));
        assert_eq!(limit(Some(0)), Err(BadLimit));
        assert_eq!(limit(Some(201)), Err(BadLimit));
        let mut rows = vec![1, 2, 3];
        assert_eq!(next_cursor(&mut rows, 2, |r| r.to_string()), Some("2".into()));
        assert_eq!(rows, [1, 2]);
        assert_eq!(next_cursor(&mut rows, 2, |r| r.to_string()), None);
    }
}
