//! RSocket's Authentication extension (`Extensions/Security/Authentication.md`, incubating,
//! version 0): credentials in a composite-metadata entry of type
//! `message/x.rsocket.authentication.v0`, in SETUP (for the connection) or in a request (for
//! that request).
//!
//! ```text
//!  A flag | auth id or type length (7 bits) | auth type (if not well-known) | payload
//!  simple (id 0x00): username length (u16) | username (UTF-8) | password (UTF-8)
//!  bearer (id 0x01): token (UTF-8)
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

/// The metadata MIME type of credentials.
pub const AUTHENTICATION_MIME: &str = "message/x.rsocket.authentication.v0";

/// Well-known authentication type ids (`WellKnownAuthTypes.md`).
const SIMPLE: u8 = 0x00;
const BEARER: u8 = 0x01;

/// Credentials of RSocket's Authentication extension: what a client presents in SETUP
/// ([`ClientBuilder::credentials`](crate::ClientBuilder::credentials)) or with one request
/// ([`Request::with_credentials`](crate::Request::with_credentials)), and what a server's
/// [`authenticate`](crate::ServerBuilder::authenticate) hook and handlers
/// ([`Context::credentials`](crate::Context::credentials)) read.
///
/// ```
/// use weft::Credentials;
///
/// let token = Credentials::bearer("abc");
/// assert_eq!(&token.encode()[..], b"\x81abc");
/// assert_eq!(Credentials::decode(&token.encode()).unwrap(), token);
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// A username and a password (type `simple`). Sent in clear: use TLS.
    Simple {
        /// The username (at most 65,535 bytes).
        username: String,
        /// The password.
        password: String,
    },
    /// A bearer token (type `bearer`): a session id, an OAuth 2 token.
    Bearer(String),
    /// Another authentication type, named by a string (1 to 127 ASCII bytes), and its payload.
    Other {
        /// The authentication type.
        auth_type: String,
        /// Its payload, as that type defines it.
        payload: Bytes,
    },
}

// Credentials are secrets: Debug shows who, never the secret.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Simple { username, .. } => {
                f.debug_struct("Simple").field("username", username).field("password", &"…").finish()
            }
            Credentials::Bearer(_) => f.debug_tuple("Bearer").field(&"…").finish(),
            Credentials::Other { auth_type, payload } => {
                f.debug_struct("Other").field("auth_type", auth_type).field("payload_len", &payload.len()).finish()
            }
        }
    }
}

/// Credentials that do not decode, or cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialsError(String);

impl fmt::Display for CredentialsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "authentication metadata: {}", self.0)
    }
}

impl std::error::Error for CredentialsError {}

impl Credentials {
    /// A username and a password.
    pub fn simple(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials::Simple { username: username.into(), password: password.into() }
    }

    /// A bearer token.
    pub fn bearer(token: impl Into<String>) -> Credentials {
        Credentials::Bearer(token.into())
    }

    /// The entry's content, as the extension lays it out.
    ///
    /// # Panics
    /// If a simple username is longer than 65,535 bytes, or an `Other` type is not 1 to 127
    /// ASCII bytes: they have no encoding. ([`try_encode`](Credentials::try_encode) returns
    /// an error instead.)
    pub fn encode(&self) -> Bytes {
        self.try_encode().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`encode`](Credentials::encode), returning an error for credentials that have no
    /// encoding.
    pub fn try_encode(&self) -> Result<Bytes, CredentialsError> {
        let mut out = BytesMut::new();
        match self {
            Credentials::Simple { username, password } => {
                let len = u16::try_from(username.len())
                    .map_err(|_| CredentialsError("a simple username is at most 65,535 bytes".into()))?;
                out.put_u8(0x80 | SIMPLE);
                out.put_u16(len);
                out.put_slice(username.as_bytes());
                out.put_slice(password.as_bytes());
            }
            Credentials::Bearer(token) => {
                out.put_u8(0x80 | BEARER);
                out.put_slice(token.as_bytes());
            }
            Credentials::Other { auth_type, payload } => {
                if auth_type.is_empty() || auth_type.len() > 0x7F || !auth_type.is_ascii() {
                    return Err(CredentialsError(format!(
                        "an authentication type is 1 to 127 ASCII bytes, not `{auth_type}`"
                    )));
                }
                out.put_u8(auth_type.len() as u8);
                out.put_slice(auth_type.as_bytes());
                out.put_slice(payload);
            }
        }
        Ok(out.freeze())
    }

    /// Reads an entry's content. Well-known types other than simple and bearer (none are
    /// assigned yet) and malformed content are errors.
    pub fn decode(content: &[u8]) -> Result<Credentials, CredentialsError> {
        let err = |why: &str| Err(CredentialsError(why.to_owned()));
        let utf8 = |bytes: &[u8], what: &str| {
            std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|_| CredentialsError(format!("the {what} is not UTF-8")))
        };
        let Some((&first, rest)) = content.split_first() else { return err("empty") };
        if first & 0x80 == 0 {
            let len = usize::from(first);
            if len == 0 || rest.len() < len {
                return err("the authentication type's length runs past the entry, or is 0");
            }
            let (auth_type, payload) = rest.split_at(len);
            if !auth_type.is_ascii() {
                return err("the authentication type is not ASCII");
            }
            let auth_type = utf8(auth_type, "authentication type")?;
            return Ok(Credentials::Other { auth_type, payload: Bytes::copy_from_slice(payload) });
        }
        match first & 0x7F {
            SIMPLE => {
                if rest.len() < 2 {
                    return err("a simple payload is shorter than its username length");
                }
                let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let Some(username) = rest[2..].get(..len) else {
                    return err("the username runs past the entry");
                };
                let password = &rest[2 + len..];
                Ok(Credentials::Simple { username: utf8(username, "username")?, password: utf8(password, "password")? })
            }
            BEARER => Ok(Credentials::Bearer(utf8(rest, "bearer token")?)),
            id => Err(CredentialsError(format!("unknown well-known authentication type {id:#04x}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_bearer_and_other_types_are_laid_out_as_the_extension_says() {
        let simple = Credentials::simple("ada", "secret");
        assert_eq!(&simple.encode()[..], b"\x80\x00\x03adasecret");
        assert_eq!(&Credentials::bearer("tok").encode()[..], b"\x81tok");
        let other = Credentials::Other { auth_type: "x.token".into(), payload: Bytes::from_static(b"\x01\x02") };
        assert_eq!(&other.encode()[..], b"\x07x.token\x01\x02");
        for c in [simple, Credentials::bearer(""), other, Credentials::simple("", "")] {
            assert_eq!(Credentials::decode(&c.encode()).unwrap(), c);
        }
    }

    #[test]
    fn malformed_content_is_an_error_never_a_panic() {
        for bad in [
            &b""[..],
            b"\x80",
            b"\x80\x00",
            b"\x80\x00\x05ab",
            b"\x80\x00\x01\xff",
            b"\x81\xff\xfe",
            b"\x82abc",
            b"\x00abc",
            b"\x05ab",
            b"\x02\xff\xfe",
        ] {
            assert!(Credentials::decode(bad).is_err(), "{bad:?}");
        }
        let long = Credentials::simple("u".repeat(70_000), "p");
        assert!(long.try_encode().is_err());
        assert!(Credentials::Other { auth_type: String::new(), payload: Bytes::new() }.try_encode().is_err());
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let shown = format!("{:?} {:?}", Credentials::simple("ada", "hunter2"), Credentials::bearer("t0k3n"));
        assert!(shown.contains("ada") && !shown.contains("hunter2") && !shown.contains("t0k3n"), "{shown}");
    }
}
