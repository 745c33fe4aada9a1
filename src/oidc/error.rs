//! The OAuth error type: one variant per registered error code. HTTP status codes are
//! chosen by the HTTP layer (`http/error.rs`), never here.

use std::borrow::Cow;
use std::fmt;

/// The error codes of RFC 6749, RFC 6750, RFC 7009, RFC 8707 and OIDC Core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// RFC 6749 §4.1.2.1, §5.2: "The request is missing a required parameter, includes an
    /// invalid parameter value, includes a parameter more than once, or is otherwise
    /// malformed."
    InvalidRequest,
    /// RFC 6749 §5.2: "Client authentication failed (e.g., unknown client, no client
    /// authentication included, or unsupported authentication method)."
    InvalidClient,
    /// RFC 6749 §5.2: "The provided authorization grant (e.g., authorization code, resource
    /// owner credentials) or refresh token is invalid, expired, revoked, does not match the
    /// redirection URI used in the authorization request, or was issued to another client."
    InvalidGrant,
    /// RFC 6749 §4.1.2.1, §5.2: "The authenticated client is not authorized to use this
    /// authorization grant type."
    UnauthorizedClient,
    /// RFC 6749 §5.2: "The authorization grant type is not supported by the authorization
    /// server."
    UnsupportedGrantType,
    /// RFC 6749 §4.1.2.1, §5.2: "The requested scope is invalid, unknown, malformed, or
    /// exceeds the scope granted by the resource owner."
    InvalidScope,
    /// RFC 6749 §4.1.2.1: "The resource owner or authorization server denied the request."
    AccessDenied,
    /// RFC 6749 §4.1.2.1: "The authorization server does not support obtaining an
    /// authorization code using this method."
    UnsupportedResponseType,
    /// RFC 6749 §4.1.2.1: "The authorization server encountered an unexpected condition
    /// that prevented it from fulfilling the request."
    ServerError,
    /// RFC 6749 §4.1.2.1: "The authorization server is currently unable to handle the
    /// request due to a temporary overloading or maintenance of the server."
    TemporarilyUnavailable,
    /// OIDC Core §3.1.2.6: "The Authorization Server requires End-User interaction of some
    /// form to proceed."
    InteractionRequired,
    /// OIDC Core §3.1.2.6: "The Authorization Server requires End-User authentication."
    LoginRequired,
    /// OIDC Core §3.1.2.6: "The End-User is REQUIRED to select a session at the
    /// Authorization Server."
    AccountSelectionRequired,
    /// OIDC Core §3.1.2.6: "The Authorization Server requires End-User consent."
    ConsentRequired,
    /// OpenID Connect Core Unmet Authentication Requirements 1.0 §2: "The Authorization
    /// Server is unable to meet the requirements of the Relying Party for the
    /// authentication of the End-User."
    UnmetAuthenticationRequirements,
    /// RFC 8707 §2: "The requested resource is invalid, missing, unknown, or malformed."
    InvalidTarget,
    /// RFC 6750 §3.1: "The access token provided is expired, revoked, malformed, or invalid
    /// for other reasons."
    InvalidToken,
    /// RFC 6750 §3.1: "The request requires higher privileges than provided by the access
    /// token."
    InsufficientScope,
    /// RFC 7009 §2.2.1: "The authorization server does not support the revocation of the
    /// presented token type."
    UnsupportedTokenType,
    /// OIDC Core §3.1.2.6: "The OP does not support use of the request parameter defined in
    /// Section 6."
    RequestNotSupported,
    /// OIDC Core §3.1.2.6: "The OP does not support use of the request_uri parameter defined
    /// in Section 6."
    RequestUriNotSupported,
}

impl ErrorCode {
    /// The wire string, as registered.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InteractionRequired => "interaction_required",
            Self::LoginRequired => "login_required",
            Self::AccountSelectionRequired => "account_selection_required",
            Self::ConsentRequired => "consent_required",
            Self::UnmetAuthenticationRequirements => "unmet_authentication_requirements",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::RequestNotSupported => "request_not_supported",
            Self::RequestUriNotSupported => "request_uri_not_supported",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error: the code plus a human-readable `error_description` (RFC 6749 §5.2).
/// Descriptions never contain secrets, tokens or codes, and only the characters RFC 6749
/// allows (see [`sanitize_description`]): every constructor goes through [`OAuthError::new`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    /// The registered error code.
    pub code: ErrorCode,
    /// Human-readable text for the developer (ASCII, no secrets).
    pub description: Cow<'static, str>,
}

macro_rules! constructors {
    ($($(#[$doc:meta])* $name:ident => $code:ident;)*) => {
        impl OAuthError {
            /// An error with any code.
            pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
                Self { code, description: sanitize_description(description.into()) }
            }
            $(
                $(#[$doc])*
                pub fn $name(description: impl Into<Cow<'static, str>>) -> Self {
                    Self::new(ErrorCode::$code, description)
                }
            )*
        }
    };
}

/// RFC 6749 §4.1.2.1, §5.2: "Values for the "error_description" parameter MUST NOT include
/// characters outside the set %x20-21 / %x23-5B / %x5D-7E." A description that quotes a
/// request value (a parameter name, say) may carry anything: `"` and `\` become `'` and `/`,
/// every other character outside the set becomes `?`. The one place this is enforced.
pub fn sanitize_description(description: Cow<'static, str>) -> Cow<'static, str> {
    if description.chars().all(allowed_in_description) {
        return description;
    }
    description
        .chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            c if allowed_in_description(c) => c,
            _ => '?',
        })
        .collect::<String>()
        .into()
}

fn allowed_in_description(c: char) -> bool {
    matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')
}

constructors! {
    /// `invalid_request` (RFC 6749 §5.2).
    invalid_request => InvalidRequest;
    /// `invalid_client` (RFC 6749 §5.2).
    invalid_client => InvalidClient;
    /// `invalid_grant` (RFC 6749 §5.2).
    invalid_grant => InvalidGrant;
    /// `unauthorized_client` (RFC 6749 §5.2).
    unauthorized_client => UnauthorizedClient;
    /// `unsupported_grant_type` (RFC 6749 §5.2).
    unsupported_grant_type => UnsupportedGrantType;
    /// `invalid_scope` (RFC 6749 §5.2).
    invalid_scope => InvalidScope;
    /// `access_denied` (RFC 6749 §4.1.2.1).
    access_denied => AccessDenied;
    /// `unsupported_response_type` (RFC 6749 §4.1.2.1).
    unsupported_response_type => UnsupportedResponseType;
    /// `server_error` (RFC 6749 §4.1.2.1).
    server_error => ServerError;
    /// `temporarily_unavailable` (RFC 6749 §4.1.2.1).
    temporarily_unavailable => TemporarilyUnavailable;
    /// `interaction_required` (OIDC Core §3.1.2.6).
    interaction_required => InteractionRequired;
    /// `login_required` (OIDC Core §3.1.2.6).
    login_required => LoginRequired;
    /// `account_selection_required` (OIDC Core §3.1.2.6).
    account_selection_required => AccountSelectionRequired;
    /// `consent_required` (OIDC Core §3.1.2.6).
    consent_required => ConsentRequired;
    /// `unmet_authentication_requirements` (OpenID Connect Unmet Authentication
    /// Requirements 1.0 §2).
    unmet_authentication_requirements => UnmetAuthenticationRequirements;
    /// `invalid_target` (RFC 8707 §2).
    invalid_target => InvalidTarget;
    /// `invalid_token` (RFC 6750 §3.1).
    invalid_token => InvalidToken;
    /// `insufficient_scope` (RFC 6750 §3.1).
    insufficient_scope => InsufficientScope;
    /// `unsupported_token_type` (RFC 7009 §2.2.1).
    unsupported_token_type => UnsupportedTokenType;
    /// `request_not_supported` (OIDC Core §3.1.2.6).
    request_not_supported => RequestNotSupported;
    /// `request_uri_not_supported` (OIDC Core §3.1.2.6).
    request_uri_not_supported => RequestUriNotSupported;
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [(ErrorCode, &str); 21] = [
        (ErrorCode::InvalidRequest, "invalid_request"),
        (ErrorCode::InvalidClient, "invalid_client"),
        (ErrorCode::InvalidGrant, "invalid_grant"),
        (ErrorCode::UnauthorizedClient, "unauthorized_client"),
        (ErrorCode::UnsupportedGrantType, "unsupported_grant_type"),
        (ErrorCode::InvalidScope, "invalid_scope"),
        (ErrorCode::AccessDenied, "access_denied"),
        (
            ErrorCode::UnsupportedResponseType,
            "unsupported_response_type",
        ),
        (ErrorCode::ServerError, "server_error"),
        (ErrorCode::TemporarilyUnavailable, "temporarily_unavailable"),
        (ErrorCode::InteractionRequired, "interaction_required"),
        (ErrorCode::LoginRequired, "login_required"),
        (
            ErrorCode::AccountSelectionRequired,
            "account_selection_required",
        ),
        (ErrorCode::ConsentRequired, "consent_required"),
        (
            ErrorCode::UnmetAuthenticationRequirements,
            "unmet_authentication_requirements",
        ),
        (ErrorCode::InvalidTarget, "invalid_target"),
        (ErrorCode::InvalidToken, "invalid_token"),
        (ErrorCode::InsufficientScope, "insufficient_scope"),
        (ErrorCode::UnsupportedTokenType, "unsupported_token_type"),
        (ErrorCode::RequestNotSupported, "request_not_supported"),
        (
            ErrorCode::RequestUriNotSupported,
            "request_uri_not_supported",
        ),
    ];

    fn in_rfc6749_set(s: &str) -> bool {
        s.bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
    }

    #[test]
    fn descriptions_stay_in_the_rfc6749_set() {
        // A parameter name quoted with {:?} brings `"`; user input may bring anything.
        for raw in [
            "parameter \"scope\" given more than once",
            "back\\slash",
            "tab\there\nnewline",
            "caf\u{e9} \u{1F600}",
            "\u{7f}\u{0}",
        ] {
            let e = OAuthError::invalid_request(raw.to_owned());
            assert!(in_rfc6749_set(&e.description), "{:?}", e.description);
            assert_eq!(e.description.chars().count(), raw.chars().count());
        }
        assert_eq!(
            OAuthError::invalid_request("parameter \"x\" repeated").description,
            "parameter 'x' repeated"
        );
        // Clean text is kept as is (and borrowed).
        let clean = OAuthError::invalid_grant("code expired");
        assert!(matches!(clean.description, Cow::Borrowed("code expired")));
    }

    #[test]
    fn wire_strings() {
        for (code, wire) in ALL {
            assert_eq!(code.as_str(), wire);
            assert_eq!(code.to_string(), wire);
        }
    }

    #[test]
    fn constructors_set_code_and_description() {
        let e = OAuthError::invalid_grant("code expired");
        assert_eq!(e.code, ErrorCode::InvalidGrant);
        assert_eq!(e.description, "code expired");
        assert_eq!(e.to_string(), "invalid_grant: code expired");
        assert_eq!(
            OAuthError::consent_required(String::from("x")).code,
            ErrorCode::ConsentRequired
        );
        assert_eq!(
            OAuthError::invalid_target("x").code,
            ErrorCode::InvalidTarget
        );
    }
}
