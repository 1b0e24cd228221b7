//! A connection row as the fresh-token path reads it: the facts that decide whether its token
//! can be served as is, and the answer's fixed part already in JSON, in two buffers (text and
//! sealed bytes), with the connection's usage counter beside them.
//!
//! Why not the row itself: with 100,000 connections in use a lookup finds nothing in the CPU's
//! caches, and a `ConnectionRow` spreads what an answer needs (id, sealed token, token type,
//! each scope, account) over a dozen allocations, each a memory miss, then copies them into the
//! answer and serializes it. Here the answer is the token spliced into bytes rendered once, from
//! the shared `ActiveToken`, when the row was read. Nor is the row kept beside it: the rare
//! paths that need it (a refresh) read it again, and the cache is a third of the size, so the
//! entries a lookup touches sit on fewer pages (fewer TLB misses as well as cache misses).

use super::ConnectionError;
use crate::activity::About;
use crate::clock::from_unix;
use crate::oauth::refresh::refresh_due;
use crate::store::connections::{Chain, ConnectionRow, Owner, TokenLookup};
use crate::usage::{Counted, UseCounter};
use crate::vault::{Sealed, Vault, VaultError};
use latch_shared::api::host::ActiveToken;
use latch_shared::{ConnectionStatus, CredentialSource, TokenKind};
use std::ops::Range;

/// How every rendered `ActiveToken` starts, up to its token (checked when rendering, and the
/// whole answer against serde's by a unit test).
const HEAD: &str = r#"{"active":true,"access_token":"#;
/// The field after the tail when there is a webhook URL (`ActiveToken`'s last field).
const WEBHOOK: &[u8] = br#","incoming_webhook_url":"#;

/// One token chain's answer, as ranges of [`Ready`]'s two buffers.
#[derive(Debug)]
struct ChainAnswer {
    /// The sealed access token, in `sealed`.
    sealed: Range<u32>,
    /// The JSON after the token, without the closing brace (`,"token_type":…,"account_id":…`),
    /// in `text`.
    tail: Range<u32>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Ready {
    active: bool,
    /// The app's own connection (`credential_source: developer`): no user to send a link to.
    developer: bool,
    /// The chain that answers each request kind: none, `bot`, `user` ([`chain`]).
    chains: [Option<Chain>; 3],
    /// Primary, then user: when each chain's token expires and was issued.
    timing: [(Option<i64>, i64); 2],
    /// Primary, then user (none without a token).
    answers: [Option<ChainAnswer>; 2],
    /// The sealed webhook URL, in `sealed`.
    webhook: Option<Range<u32>>,
    /// Where the identity's parts end in `text`: user, organization, provider, account, id.
    ends: [u32; 5],
    /// `user\0organization\0provider\0account\0id\0` (it starts with `changes::owner_key`),
    /// then each chain's tail.
    text: Box<str>,
    /// The sealed tokens, then the sealed webhook URL.
    sealed: Box<[u8]>,
    /// Its retrievals, for `usage`.
    uses: UseCounter,
}

impl Counted for Ready {
    fn counter(&self) -> &UseCounter {
        &self.uses
    }
    fn about(&self) -> About<'_> {
        let owner = Owner {
            user_id: self.part(0),
            organization_id: self.part(1),
            provider: self.part(2),
            account_id: self.part(3),
        };
        About { id: self.id(), owner }
    }
}

/// `buf[range]`, for the ranges [`Ready::new`] made (in bounds, on character boundaries).
fn slice<'a, T: ?Sized + std::ops::Index<Range<usize>, Output = T>>(buf: &'a T, range: &Range<u32>) -> &'a T {
    &buf[range.start as usize..range.end as usize]
}

/// Which chain answers `asked`: by default the connection's own token (the bot's, or a user-only
/// install's user token); `user` the installing user's (held beside a bot token, or the only one
/// of a user-only install, or a bearer token, which acts as its user); `bot` only a bot token.
/// `None` is `token_not_found`: the install did not grant it.
fn chain(row: &ConnectionRow, asked: Option<TokenKind>) -> Option<Chain> {
    match (asked, row.token_type.as_str()) {
        (None, _) | (Some(TokenKind::Bot), "bot") => Some(Chain::Primary),
        (Some(TokenKind::User), _) if row.user_access_token.is_some() => Some(Chain::User),
        (Some(TokenKind::User), "user" | "bearer") => Some(Chain::Primary),
        (Some(_), _) => None,
    }
}

fn asked_index(asked: Option<TokenKind>) -> usize {
    match asked {
        None => 0,
        Some(TokenKind::Bot) => 1,
        Some(TokenKind::User) => 2,
    }
}

/// A buffer offset; a row's parts are at most a few KiB, so `u32` holds any.
fn offset(n: usize) -> Result<u32, ConnectionError> {
    u32::try_from(n).map_err(|_| ConnectionError::Render("a connection row too large to answer from".into()))
}

fn chain_index(chain: Chain) -> usize {
    match chain {
        Chain::Primary => 0,
        Chain::User => 1,
    }
}

impl Ready {
    pub fn new(row: &ConnectionRow) -> Result<Ready, ConnectionError> {
        let (mut text, mut sealed) = (String::with_capacity(384), Vec::with_capacity(256));
        let mut ends = [0; 5];
        let identity = [&row.user_id, &row.organization_id, &row.provider, &row.account_id, &row.id];
        for (end, part) in ends.iter_mut().zip(identity) {
            text.push_str(part);
            *end = offset(text.len())?;
            text.push('\0');
        }
        let mut answers = [None, None];
        for (slot, chain) in answers.iter_mut().zip([Chain::Primary, Chain::User]) {
            let Some(token) = row.access(chain) else {
                continue;
            };
            let start = offset(sealed.len())?;
            sealed.extend_from_slice(token);
            let token = start..offset(sealed.len())?;
            let rendered = serde_json::to_string(&ActiveToken {
                active: true,
                access_token: String::new(),
                token_type: match chain {
                    Chain::Primary => row.token_type.clone(),
                    Chain::User => "user".to_owned(),
                },
                expires_at: row.expires_at(chain).map(from_unix),
                scopes: match chain {
                    Chain::Primary => row.scopes.to_vec(),
                    Chain::User => row.user_scopes.to_vec(),
                },
                missing_scopes: row.missing_scopes.to_vec(),
                connection_id: row.id.clone(),
                account_id: row.account_id.clone(),
                incoming_webhook_url: None,
            })?;
            // `{"active":true,"access_token":""` + tail + `}`.
            let tail = rendered
                .strip_prefix(HEAD)
                .and_then(|rest| rest.strip_prefix("\"\""))
                .and_then(|rest| rest.strip_suffix('}'))
                .ok_or(ConnectionError::Render("an active token renders in an unexpected shape".into()))?;
            let start = offset(text.len())?;
            text.push_str(tail);
            *slot = Some(ChainAnswer { sealed: token, tail: start..offset(text.len())? });
        }
        let webhook = match row.incoming_webhook_url.as_deref() {
            Some(url) => {
                let start = offset(sealed.len())?;
                sealed.extend_from_slice(url);
                Some(start..offset(sealed.len())?)
            }
            None => None,
        };
        Ok(Ready {
            active: row.status == ConnectionStatus::Active,
            developer: row.credential_source == CredentialSource::Developer,
            timing: [Chain::Primary, Chain::User].map(|chain| (row.expires_at(chain), row.issued_at(chain))),
            chains: [None, Some(TokenKind::Bot), Some(TokenKind::User)].map(|asked| chain(row, asked)),
            answers,
            webhook,
            ends,
            text: text.into_boxed_str(),
            sealed: sealed.into_boxed_slice(),
            uses: UseCounter::default(),
        })
    }

    fn part(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] + 1 };
        slice(&*self.text, &(start..self.ends[i]))
    }

    /// The connection's id.
    pub fn id(&self) -> &str {
        self.part(4)
    }

    /// `changes::owner_key` of the connection's owner.
    pub fn owner(&self) -> &str {
        slice(&*self.text, &(0..self.ends[2] + 1))
    }

    /// Whether this is the connection a lookup names (the token cache's check behind its hash).
    pub fn answers(&self, q: &TokenLookup<'_>) -> bool {
        // A cold entry costs a memory miss per buffer. The answer will read the sealed token and
        // the text's far end: load them now, beside the comparison's own load, so that their
        // misses overlap instead of following one another.
        std::hint::black_box((self.sealed.first().copied(), self.text.as_bytes().last().copied()));
        self.part(0) == q.user_id
            && self.part(1) == q.organization_id
            && self.part(2) == q.provider
            && q.account_id.is_none_or(|a| a == self.part(3))
            && q.connection_id.is_none_or(|c| c == self.id())
    }

    /// Whether it is the app's own connection rather than an end user's.
    pub fn is_developer(&self) -> bool {
        self.developer
    }

    /// Whether the connection can serve tokens (else its user must reconnect).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The chain that answers a request for `asked`; `token_not_found` when the install did not
    /// grant that kind of token.
    pub fn chain(&self, asked: Option<TokenKind>) -> Result<Chain, ConnectionError> {
        self.chains[asked_index(asked)].ok_or(ConnectionError::TokenNotFound)
    }

    /// Whether `chain`'s token must be refreshed before it is served (`refresh::needs_refresh`).
    pub fn needs_refresh(&self, chain: Chain, now: i64, skew: i64) -> bool {
        let (expires_at, issued_at) = self.timing[chain_index(chain)];
        refresh_due(expires_at, issued_at, now, skew)
    }

    /// The `ActiveToken` JSON of `chain`: its token opened and spliced into the rendered rest.
    pub fn answer(&self, vault: &Vault, chain: Chain) -> Result<Vec<u8>, ConnectionError> {
        let a = self.answers[chain_index(chain)].as_ref().ok_or(ConnectionError::TokenNotFound)?;
        let open = |slot: Sealed, sealed: &Range<u32>| -> Result<String, ConnectionError> {
            let plain = vault.open(slot.slot(self.id()), slice(&*self.sealed, sealed))?;
            Ok(String::from_utf8(plain).map_err(|_| VaultError::Integrity)?)
        };
        let token = open(chain.sealed().0, &a.sealed)?;
        let webhook = self.webhook.as_ref().map(|w| open(Sealed::IncomingWebhookUrl, w)).transpose()?;
        let mut body = Vec::with_capacity(HEAD.len() + token.len() + a.tail.len() + 8);
        body.extend_from_slice(HEAD.as_bytes());
        serde_json::to_writer(&mut body, &token)?;
        body.extend_from_slice(slice(&*self.text, &a.tail).as_bytes());
        if let Some(url) = webhook {
            body.extend_from_slice(WEBHOOK);
            serde_json::to_writer(&mut body, &url)?;
        }
        body.push(b'}');
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::changes::owner_key;
    use crate::vault::{MasterKey, Vault};

    fn vault() -> Vault {
        Vault::new(MasterKey::from_bytes(&[7; 32]), [])
    }

    fn row(vault: &Vault) -> ConnectionRow {
        let owner = Owner { provider: "slack", user_id: "alice \"quoted\"", organization_id: "org", account_id: "T1" };
        let mut row = ConnectionRow::new("conn_1".into(), owner, 1_700_000_000);
        row.token_type = "bot".into();
        row.scopes = String::from("chat:write channels:read").into();
        row.missing_scopes = String::from("files:write").into();
        row.access_token = Some(vault.seal(Sealed::AccessToken.slot("conn_1"), "xoxb-\"1\"\n".as_bytes()));
        row.access_token_expires_at = Some(1_800_000_000);
        row
    }

    fn expected(vault: &Vault, row: &ConnectionRow, chain: Chain) -> ActiveToken {
        let open =
            |slot: Sealed, sealed: &[u8]| String::from_utf8(vault.open(slot.slot(&row.id), sealed).unwrap()).unwrap();
        ActiveToken {
            active: true,
            access_token: open(chain.sealed().0, row.access(chain).unwrap()),
            token_type: if chain == Chain::User { "user".into() } else { row.token_type.clone() },
            expires_at: row.expires_at(chain).map(from_unix),
            scopes: if chain == Chain::User { row.user_scopes.to_vec() } else { row.scopes.to_vec() },
            missing_scopes: row.missing_scopes.to_vec(),
            connection_id: row.id.clone(),
            account_id: row.account_id.clone(),
            incoming_webhook_url: row.incoming_webhook_url.as_deref().map(|w| open(Sealed::IncomingWebhookUrl, w)),
        }
    }

    #[test]
    fn the_spliced_answer_is_the_serialized_active_token_byte_for_byte() {
        let vault = vault();
        let mut row = row(&vault);
        let plain = Ready::new(&row).unwrap();
        let want = serde_json::to_vec(&expected(&vault, &row, Chain::Primary)).unwrap();
        assert_eq!(
            String::from_utf8(plain.answer(&vault, Chain::Primary).unwrap()).unwrap(),
            String::from_utf8(want).unwrap()
        );
        // With a user token beside the bot's and a webhook URL; no expiry on the user chain.
        row.user_access_token = Some(vault.seal(Sealed::UserAccessToken.slot("conn_1"), b"xoxp-2"));
        row.user_scopes = String::from("search:read").into();
        row.incoming_webhook_url =
            Some(vault.seal(Sealed::IncomingWebhookUrl.slot("conn_1"), b"https://hooks.slack.test/T1/B1"));
        let full = Ready::new(&row).unwrap();
        for chain in [Chain::Primary, Chain::User] {
            let want = serde_json::to_vec(&expected(&vault, &row, chain)).unwrap();
            assert_eq!(full.answer(&vault, chain).unwrap(), want, "{chain:?}");
        }
    }

    #[test]
    fn it_answers_its_own_lookups_only() {
        let ready = Ready::new(&row(&vault())).unwrap();
        assert_eq!(ready.id(), "conn_1");
        assert_eq!(ready.owner(), owner_key("alice \"quoted\"", "org", "slack"));
        let mut q = TokenLookup {
            user_id: "alice \"quoted\"",
            organization_id: "org",
            provider: "slack",
            account_id: None,
            connection_id: None,
        };
        assert!(ready.answers(&q));
        q.account_id = Some("T1");
        q.connection_id = Some("conn_1");
        assert!(ready.answers(&q));
        for other in [
            TokenLookup { account_id: Some("T2"), ..q },
            TokenLookup { connection_id: Some("conn_2"), ..q },
            TokenLookup { organization_id: "", ..q },
            TokenLookup { user_id: "alice", ..q },
        ] {
            assert!(!ready.answers(&other), "{other:?}");
        }
    }

    #[test]
    fn the_chains_follow_what_the_install_granted() {
        let vault = vault();
        let mut row = row(&vault);
        let ready = Ready::new(&row).unwrap();
        assert_eq!(ready.chain(None).unwrap(), Chain::Primary);
        assert_eq!(ready.chain(Some(TokenKind::Bot)).unwrap(), Chain::Primary);
        assert!(matches!(ready.chain(Some(TokenKind::User)), Err(ConnectionError::TokenNotFound)));
        row.token_type = "bearer".into();
        let ready = Ready::new(&row).unwrap();
        assert_eq!(ready.chain(Some(TokenKind::User)).unwrap(), Chain::Primary);
        assert!(matches!(ready.chain(Some(TokenKind::Bot)), Err(ConnectionError::TokenNotFound)));
    }
}
