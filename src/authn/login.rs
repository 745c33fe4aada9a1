//! The login state machine: password -> second factor (when one is enrolled or the request
//! demands it) -> done. Pure: the service stores the state between requests, feeds it the
//! outcome of each check, and the handler renders the step that comes back.
//!
//! ```text
//!   Password --password ok, no second factor--------------------------> Done
//!   Password --password ok, second factor enrolled--> SecondFactor --ok--> Done
//!   Password --password ok, none enrolled, MFA demanded--> MfaUnavailable
//!   (step-up of a session)                            SecondFactor --ok--> Done
//! ```
//! A pending login expires [`PENDING_TTL`] seconds after it started and dies after
//! [`MAX_ATTEMPTS`] failed second-factor attempts.

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::domain::{CredentialsEpoch, FactorKind, FactorUse};

/// How long a login may stay pending, in seconds.
pub const PENDING_TTL: i64 = 600;
/// Failed second-factor attempts before a pending login dies (the per-account code bucket
/// limits guessing across pending logins too).
pub const MAX_ATTEMPTS: u32 = 5;

/// What to do when the login is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum Resume {
    /// Run this authorization request (form-encoded) again.
    Authorize {
        /// The original request's parameters.
        request: String,
    },
    /// Go to this page of the account area (a path starting with `/account`).
    Account {
        /// The path.
        next: String,
    },
}

/// Where a pending login stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Waiting for the password.
    Password,
    /// The password (or an earlier session) is done; waiting for a second factor.
    SecondFactor,
}

/// A login in progress. Stored server-side as JSON between requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    /// The user, once known (after the password; from the session for a step-up or a
    /// re-authentication).
    pub user_id: Option<String>,
    /// Where it stands.
    pub stage: Stage,
    /// Factors passed so far, with their times.
    pub passed: Vec<FactorUse>,
    /// The second factors the user has (what the second-factor page offers).
    pub enrolled: Vec<FactorKind>,
    /// The request demands multi-factor.
    pub require_mfa: bool,
    /// The session being stepped up or re-authenticated, by `sid`.
    pub session_sid: Option<String>,
    /// What to do when done.
    pub resume: Resume,
    /// When it started.
    pub started_at: UnixTime,
    /// Failed attempts at the current stage.
    pub attempts: u32,
    /// The user's credentials epoch when their password or passkey was checked (or the
    /// stepped-up session's): a password change in between ends this login.
    pub credentials_epoch: CredentialsEpoch,
}

/// What happened at the current stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The password matched this (enabled) user, who has these second factors.
    PasswordVerified {
        /// The user.
        user_id: String,
        /// Their enrolled second factors.
        enrolled: Vec<FactorKind>,
        /// Their credentials epoch, read with the password hash that matched.
        credentials_epoch: CredentialsEpoch,
    },
    /// A passkey signed this user in on its own (discoverable credential, user verified):
    /// multi-factor by itself, so no password or second factor follows.
    PasskeyVerified {
        /// The user the passkey's user handle names.
        user_id: String,
        /// Their credentials epoch, read before the assertion was checked.
        credentials_epoch: CredentialsEpoch,
    },
    /// A second factor of this kind was verified.
    SecondFactorVerified(FactorKind),
    /// A second factor was wrong.
    SecondFactorFailed,
}

/// A finished login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// Who signed in.
    pub user_id: String,
    /// Every factor presented, with its time.
    pub factors: Vec<FactorUse>,
    /// The session to upgrade (step-up, re-authentication), if any.
    pub session_sid: Option<String>,
    /// What to do next.
    pub resume: Resume,
    /// The credentials epoch the login was made under, for the session.
    pub credentials_epoch: CredentialsEpoch,
}

/// The next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Ask for a second factor; the pending login must be stored again.
    SecondFactor(PendingLogin),
    /// Done.
    Done(Completed),
    /// Multi-factor is demanded but the user has no second factor.
    MfaUnavailable {
        /// What the user was trying to do.
        resume: Resume,
    },
}

/// Why an event was refused. Every error ends the pending login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// Older than [`PENDING_TTL`]: start again.
    #[error("the sign-in has expired; start again")]
    Expired,
    /// The event does not belong to the current stage.
    #[error("this step does not belong to the sign-in in progress")]
    WrongStage,
    /// The password was for another user than the one being re-authenticated.
    #[error("the password was for another account")]
    WrongUser,
    /// The user has no such second factor.
    #[error("that second factor is not set up for this account")]
    FactorNotEnrolled,
    /// Too many failed attempts: start again.
    #[error("too many failed attempts; start again")]
    TooManyAttempts,
}

impl PendingLogin {
    /// A sign-in from the login page: the password comes first.
    pub fn start(resume: Resume, require_mfa: bool, now: UnixTime) -> Self {
        Self {
            user_id: None,
            stage: Stage::Password,
            passed: Vec::new(),
            enrolled: Vec::new(),
            require_mfa,
            session_sid: None,
            resume,
            started_at: now,
            attempts: 0,
            credentials_epoch: 0,
        }
    }

    /// A re-authentication of a signed-in user before a sensitive change: the password
    /// (of that user only) and then their second factor, if they have one.
    pub fn reauthenticate(user_id: &str, sid: &str, resume: Resume, now: UnixTime) -> Self {
        Self {
            user_id: Some(user_id.to_owned()),
            session_sid: Some(sid.to_owned()),
            ..Self::start(resume, false, now)
        }
    }

    /// A step-up of a single-factor session to multi-factor: only the second factor is
    /// asked; the session's earlier factors (made under `epoch`) count.
    pub fn step_up(
        user_id: &str,
        sid: &str,
        epoch: CredentialsEpoch,
        earlier: &[FactorUse],
        enrolled: Vec<FactorKind>,
        resume: Resume,
        now: UnixTime,
    ) -> Next {
        let enrolled: Vec<FactorKind> = enrolled
            .into_iter()
            .filter(|k| k.is_second_factor())
            .collect();
        if enrolled.is_empty() {
            return Next::MfaUnavailable { resume };
        }
        Next::SecondFactor(Self {
            user_id: Some(user_id.to_owned()),
            stage: Stage::SecondFactor,
            passed: earlier.to_vec(),
            enrolled,
            require_mfa: true,
            session_sid: Some(sid.to_owned()),
            resume,
            started_at: now,
            attempts: 0,
            credentials_epoch: epoch,
        })
    }

    /// When it stops being usable.
    pub fn expires_at(&self) -> UnixTime {
        self.started_at.saturating_add(PENDING_TTL)
    }

    /// True when the second-factor page may accept `kind` from this user.
    pub fn offers(&self, kind: FactorKind) -> bool {
        self.stage == Stage::SecondFactor && self.enrolled.contains(&kind)
    }

    /// Applies `event` at `now`.
    pub fn apply(mut self, event: Event, now: UnixTime) -> Result<Next, LoginError> {
        if now >= self.expires_at() || now < self.started_at {
            return Err(LoginError::Expired);
        }
        match (self.stage, event) {
            (
                Stage::Password,
                Event::PasswordVerified {
                    user_id,
                    enrolled,
                    credentials_epoch,
                },
            ) => {
                if self.user_id.as_ref().is_some_and(|u| *u != user_id) {
                    return Err(LoginError::WrongUser);
                }
                self.passed.push(FactorUse {
                    kind: FactorKind::Password,
                    at: now,
                });
                self.user_id = Some(user_id);
                self.credentials_epoch = credentials_epoch;
                self.enrolled = enrolled
                    .into_iter()
                    .filter(|k| k.is_second_factor())
                    .collect();
                Ok(self.after_password())
            }
            (
                Stage::Password,
                Event::PasskeyVerified {
                    user_id,
                    credentials_epoch,
                },
            ) => {
                if self.user_id.as_ref().is_some_and(|u| *u != user_id) {
                    return Err(LoginError::WrongUser);
                }
                self.passed.push(FactorUse {
                    kind: FactorKind::Passkey,
                    at: now,
                });
                self.user_id = Some(user_id);
                self.credentials_epoch = credentials_epoch;
                Ok(self.finish())
            }
            (Stage::SecondFactor, Event::SecondFactorVerified(kind)) => {
                if !self.offers(kind) || self.user_id.is_none() {
                    return Err(LoginError::FactorNotEnrolled);
                }
                self.passed.push(FactorUse { kind, at: now });
                Ok(self.finish())
            }
            (Stage::SecondFactor, Event::SecondFactorFailed) => {
                self.attempts = self.attempts.saturating_add(1);
                if self.attempts >= MAX_ATTEMPTS {
                    return Err(LoginError::TooManyAttempts);
                }
                Ok(Next::SecondFactor(self))
            }
            _ => Err(LoginError::WrongStage),
        }
    }

    /// A user with a second factor always uses it; a user without one passes with the
    /// password alone unless the request demands multi-factor.
    fn after_password(mut self) -> Next {
        if !self.enrolled.is_empty() {
            self.stage = Stage::SecondFactor;
            self.attempts = 0;
            return Next::SecondFactor(self);
        }
        if self.require_mfa {
            return Next::MfaUnavailable {
                resume: self.resume,
            };
        }
        self.finish()
    }

    fn finish(self) -> Next {
        Next::Done(Completed {
            user_id: self.user_id.unwrap_or_default(),
            factors: self.passed,
            session_sid: self.session_sid,
            resume: self.resume,
            credentials_epoch: self.credentials_epoch,
        })
    }
}

#[cfg(test)]
mod tests;
