//! Server-side components: the seed's stateful components, without server-held state.
//!
//! A component is four things:
//! - a **state** struct (`Serialize + Deserialize`): everything the component needs to render
//!   and to handle its next action;
//! - an **action** enum: what a person can do to it (htmx posts the action's name and fields);
//! - a pure **`update(state, action) -> (state, effect)`**: no I/O, so every rule is a plain
//!   unit test. Work that touches the world (writing a row) is returned as an effect, performed
//!   in one place by the handler, and its outcome is fed back to `update` as another action;
//! - an askama **template** that renders the state, with the state sealed into it as a token.
//!
//! IHP keeps component state in one server process (sticky sessions, lost on restart). Here
//! the state travels with the markup as an HMAC-signed token ([`seal`] / [`open`]): any
//! instance can serve the next action and a restart loses nothing. The key is derived from
//! the server secret for the purpose `component-state`, and the component's name is signed
//! with the state, so a token of one component is never accepted by another. A token that
//! does not verify is refused with 400 before anything else happens.
//!
//! A second component: a state struct implementing [`Component`], an action enum, a template
//! with a hidden `token` field holding `seal(...)`, and a handler that calls [`open`], folds
//! the request's actions through `update`, performs the effect and renders.

pub mod composer;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crypto;
use crate::error::AppError;

/// A server-side component's state.
pub trait Component: Serialize + DeserializeOwned {
    /// Signed with the state, so tokens cannot be moved between components.
    const NAME: &'static str;
    /// What a person can do to the component (and what effects report back).
    type Action;
    /// Work for the handler to perform after an update.
    type Effect;

    /// Applies one action: pure, no I/O.
    fn update(self, action: Self::Action) -> (Self, Self::Effect);
}

fn key(secret: &[u8]) -> [u8; 32] {
    crypto::derive_key(secret, "component-state")
}

fn mac(secret: &[u8], name: &str, payload: &str) -> String {
    let signed = format!("{name}.{payload}");
    URL_SAFE_NO_PAD.encode(crypto::hmac_sha256(&key(secret), signed.as_bytes()))
}

/// The state as a token for the markup: `base64(json).base64(hmac)`.
pub fn seal<C: Component>(secret: &[u8], state: &C) -> Result<String, AppError> {
    let json = serde_json::to_vec(state).map_err(|e| AppError::Unexpected(anyhow::Error::new(e)))?;
    let payload = URL_SAFE_NO_PAD.encode(json);
    let mac = mac(secret, C::NAME, &payload);
    Ok(format!("{payload}.{mac}"))
}

/// The state a token holds, if it was sealed by this server for this component; 400 otherwise.
pub fn open<C: Component>(secret: &[u8], token: &str) -> Result<C, AppError> {
    let refused = || AppError::BadRequest("this form is out of date or was altered; reload the page".into());
    let (payload, given) = token.split_once('.').ok_or_else(refused)?;
    if !crypto::constant_time_eq(mac(secret, C::NAME, payload).as_bytes(), given.as_bytes()) {
        tracing::info!(component = C::NAME, "refused a component token that does not verify");
        return Err(refused());
    }
    let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| refused())?;
    serde_json::from_slice(&json).map_err(|_| refused())
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Counter {
        n: i64,
    }

    impl Component for Counter {
        const NAME: &'static str = "counter";
        type Action = i64;
        type Effect = ();

        fn update(self, by: i64) -> (Self, ()) {
            (Self { n: self.n + by }, ())
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Other {
        n: i64,
    }

    impl Component for Other {
        const NAME: &'static str = "other";
        type Action = ();
        type Effect = ();

        fn update(self, _: ()) -> (Self, ()) {
            (self, ())
        }
    }

    const SECRET: &[u8] = b"a server secret";

    #[test]
    fn a_sealed_state_opens_again() {
        let token = seal(SECRET, &Counter { n: 41 }).expect("seal");
        let state: Counter = open(SECRET, &token).expect("open");
        assert_eq!(state.update(1).0, Counter { n: 42 });
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let token = seal(SECRET, &Counter { n: 1 }).expect("seal");
        let (payload, mac) = token.split_once('.').expect("two parts");
        let forged = URL_SAFE_NO_PAD.encode(br#"{"n":1000}"#);
        for bad in [
            format!("{forged}.{mac}"),
            format!("{payload}.{}", &mac[1..]),
            format!("{payload}x.{mac}"),
            payload.to_owned(),
            String::new(),
            "..".to_owned(),
        ] {
            assert!(matches!(open::<Counter>(SECRET, &bad), Err(AppError::BadRequest(_))), "{bad}");
        }
        assert!(open::<Counter>(b"another secret", &token).is_err(), "another server's secret");
        assert!(open::<Other>(SECRET, &token).is_err(), "another component's token");
    }
}
