//! Who may do what in a room: one [`Who`] per [`Group`] of actions, the
//! `control` mode derived from them, and the one check every command, chat
//! message and moderation call goes through ([`Permissions::check`]).
//!
//! A caller is the host (host token), a co-host (a live co-host token) or
//! anyone (no token). The host may do everything; a co-host what the groups
//! give to co-hosts or anyone; anyone what the groups give to anyone.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::check::CommandError;

/// Who may send playback commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Control {
    /// Only requests with the host token.
    Host,
    /// Anyone.
    Open,
    /// Derived, never asked for: the permissions mix who may control the room.
    Custom,
}

/// Co-hosts per room unless `--max-cohosts` says otherwise.
pub const DEFAULT_MAX_COHOSTS: usize = 10;

/// One co-host as the room keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cohost {
    pub cohost_id: String,
    pub name: String,
    /// The token's SHA-256; the token itself is never kept. Not on the feed
    /// between nodes (see [`Room::absorb`]), so a mirror keeps zeros here:
    /// tokens are only ever checked against the stored room.
    #[serde(default)]
    pub token_hash: [u8; 32],
}

/// A co-host as clients see it: never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CohostView {
    pub cohost_id: String,
    pub name: String,
}

impl From<&Cohost> for CohostView {
    fn from(cohost: &Cohost) -> Self {
        Self {
            cohost_id: cohost.cohost_id.clone(),
            name: cohost.name.clone(),
        }
    }
}

/// A kind of action, given to one [`Who`] by the room's permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// play, pause, seek, rate, load, duration.
    Playback,
    QueueAdd,
    /// queue_remove, queue_move, queue_mode.
    QueueEdit,
    /// next.
    Skip,
    /// kick, delete_chat. Never given to anyone.
    Moderate,
    /// Sending chat messages.
    Chat,
}

impl Group {
    /// Every group, in the wire order of `permissions`.
    pub const ALL: [Group; 6] = [
        Group::Playback,
        Group::QueueAdd,
        Group::QueueEdit,
        Group::Skip,
        Group::Moderate,
        Group::Chat,
    ];

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Group::Playback => "playback",
            Group::QueueAdd => "queue_add",
            Group::QueueEdit => "queue_edit",
            Group::Skip => "skip",
            Group::Moderate => "moderate",
            Group::Chat => "chat",
        }
    }
}

/// Who may act in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Who {
    Host,
    Cohost,
    Anyone,
}

impl Who {
    /// The wire names, every group's choices (`moderate`'s without the last).
    pub const NAMES: [&'static str; 3] = ["host", "cohost", "anyone"];

    fn parse(name: &str) -> Option<Who> {
        match name {
            "host" => Some(Who::Host),
            "cohost" => Some(Who::Cohost),
            "anyone" => Some(Who::Anyone),
            _ => None,
        }
    }

    /// Whether `caller` is among those this gives the group to.
    fn admits(self, caller: Caller) -> bool {
        matches!(
            (self, caller),
            (_, Caller::Host) | (Who::Anyone, _) | (Who::Cohost, Caller::Cohost)
        )
    }

    /// The end of a refusal's message: "the host", "the host and co-hosts".
    fn described(self) -> &'static str {
        match self {
            Who::Host => "the host",
            Who::Cohost => "the host and co-hosts",
            Who::Anyone => "anyone",
        }
    }

    /// The refusal of a request that came without a token: what it asked
    /// for, who may, and how to send a token.
    fn token_needed(self, what: &str) -> CommandError {
        let token = match self {
            Who::Host => "<host_token>",
            Who::Cohost | Who::Anyone => "<token>",
        };
        CommandError::Unauthorized(format!(
            "{what} is for {}: send `Authorization: Bearer {token}`",
            self.described()
        ))
    }
}

/// Who a request comes from, by its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Host,
    Cohost,
    /// No token.
    Anyone,
}

/// The room's `permissions`: for each group, who may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Permissions {
    pub playback: Who,
    pub queue_add: Who,
    pub queue_edit: Who,
    pub skip: Who,
    /// Never `anyone`.
    pub moderate: Who,
    pub chat: Who,
}

impl Default for Permissions {
    /// A `host` room's.
    fn default() -> Self {
        Self::new(Control::Host)
    }
}

impl Permissions {
    /// A new room's: the four control groups follow `control`; moderation is
    /// the host's, chat anyone's.
    pub fn new(control: Control) -> Self {
        let mut permissions = Self {
            playback: Who::Host,
            queue_add: Who::Host,
            queue_edit: Who::Host,
            skip: Who::Host,
            moderate: Who::Host,
            chat: Who::Anyone,
        };
        permissions.set_control(control);
        permissions
    }

    /// The `control` command: sets the four control groups (a `custom`
    /// control is never asked for, only derived).
    pub fn set_control(&mut self, control: Control) {
        let who = match control {
            Control::Open => Who::Anyone,
            Control::Host | Control::Custom => Who::Host,
        };
        self.playback = who;
        self.queue_add = who;
        self.queue_edit = who;
        self.skip = who;
    }

    /// `control` as clients see it: `host` when the four control groups are
    /// the host's, `open` when they are anyone's, `custom` otherwise.
    pub fn control(&self) -> Control {
        let four = [self.playback, self.queue_add, self.queue_edit, self.skip];
        if four.iter().all(|who| *who == Who::Host) {
            Control::Host
        } else if four.iter().all(|who| *who == Who::Anyone) {
            Control::Open
        } else {
            Control::Custom
        }
    }

    /// Who may act in `group`.
    pub fn who(&self, group: Group) -> Who {
        match group {
            Group::Playback => self.playback,
            Group::QueueAdd => self.queue_add,
            Group::QueueEdit => self.queue_edit,
            Group::Skip => self.skip,
            Group::Moderate => self.moderate,
            Group::Chat => self.chat,
        }
    }

    fn slot(&mut self, group: Group) -> &mut Who {
        match group {
            Group::Playback => &mut self.playback,
            Group::QueueAdd => &mut self.queue_add,
            Group::QueueEdit => &mut self.queue_edit,
            Group::Skip => &mut self.skip,
            Group::Moderate => &mut self.moderate,
            Group::Chat => &mut self.chat,
        }
    }

    /// The one check of who may act: `Ok` when `caller` may act in `group`.
    /// Refused without a token: `401`; with a token that may not: `403`,
    /// naming the group and who may.
    pub fn check(&self, group: Group, caller: Caller) -> Result<(), CommandError> {
        let who = self.who(group);
        if who.admits(caller) {
            return Ok(());
        }
        match caller {
            Caller::Anyone => Err(who.token_needed(group.name())),
            Caller::Host | Caller::Cohost => Err(CommandError::NotPermitted(format!(
                "{} is for {}",
                group.name(),
                who.described()
            ))),
        }
    }

    /// The `permissions` command's change, any subset of the groups: an
    /// unknown group or who, or `moderate` for anyone, is `invalid_value`.
    pub fn patched(&self, changes: &Map<String, Value>) -> Result<Permissions, CommandError> {
        let mut patched = *self;
        for (name, value) in changes {
            let Some(group) = Group::ALL.iter().copied().find(|g| g.name() == name) else {
                let names: Vec<&str> = Group::ALL.iter().map(|g| g.name()).collect();
                return Err(CommandError::InvalidValue(format!(
                    "unknown permission group `{}`; the groups are {}",
                    name.chars().take(40).collect::<String>(),
                    names.join(", ")
                )));
            };
            let Some(who) = value.as_str().and_then(Who::parse) else {
                return Err(CommandError::InvalidValue(format!(
                    "`{name}` must be one of {}",
                    Who::NAMES.map(|n| format!("\"{n}\"")).join(", ")
                )));
            };
            if group == Group::Moderate && who == Who::Anyone {
                return Err(CommandError::InvalidValue(
                    "`moderate` is for the host or co-hosts, never anyone".into(),
                ));
            }
            *patched.slot(group) = who;
        }
        Ok(patched)
    }
}

/// The check of what is the host's alone, whatever the permissions say
/// (`what` names it in the refusal).
pub fn check_host_only(caller: Caller, what: &str) -> Result<(), CommandError> {
    match caller {
        Caller::Host => Ok(()),
        Caller::Anyone => Err(Who::Host.token_needed(what)),
        Caller::Cohost => Err(CommandError::NotPermitted(format!(
            "{what} is for the host"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_rooms_behave_as_their_control_says() {
        let cases = [
            (Control::Host, Who::Host, Control::Host),
            (Control::Open, Who::Anyone, Control::Open),
        ];
        for (control, four, derived) in cases {
            let permissions = Permissions::new(control);
            for group in [
                Group::Playback,
                Group::QueueAdd,
                Group::QueueEdit,
                Group::Skip,
            ] {
                assert_eq!(permissions.who(group), four, "{control:?} {group:?}");
            }
            assert_eq!(permissions.moderate, Who::Host);
            assert_eq!(permissions.chat, Who::Anyone);
            assert_eq!(permissions.control(), derived);
        }
    }

    #[test]
    fn control_is_derived_from_the_four_control_groups() {
        let cases = [
            (json!({}), Control::Host),
            (json!({"chat": "host", "moderate": "cohost"}), Control::Host),
            (json!({"queue_add": "anyone"}), Control::Custom),
            (json!({"playback": "cohost"}), Control::Custom),
            (
                json!({"playback": "anyone", "queue_add": "anyone", "queue_edit": "anyone", "skip": "anyone"}),
                Control::Open,
            ),
        ];
        for (changes, control) in cases {
            let Value::Object(changes) = changes else {
                unreachable!()
            };
            let patched = Permissions::default().patched(&changes).unwrap();
            assert_eq!(patched.control(), control, "{changes:?}");
        }
    }

    #[test]
    fn bad_changes_are_invalid_values() {
        for changes in [
            json!({"dance": "host"}),
            json!({"playback": "everyone"}),
            json!({"playback": 3}),
            json!({"moderate": "anyone"}),
        ] {
            let Value::Object(changes) = changes else {
                unreachable!()
            };
            assert!(
                matches!(
                    Permissions::default().patched(&changes),
                    Err(CommandError::InvalidValue(_))
                ),
                "{changes:?}"
            );
        }
    }

    #[test]
    fn the_check_gives_each_caller_what_its_group_allows() {
        use Caller as C;
        let forbidden = |m: &str| Err(CommandError::NotPermitted(m.into()));
        let unauthorized = |m: &str| Err(CommandError::Unauthorized(m.into()));
        let cases = [
            (Who::Host, C::Host, Ok(())),
            (Who::Host, C::Cohost, forbidden("skip is for the host")),
            (
                Who::Host,
                C::Anyone,
                unauthorized("skip is for the host: send `Authorization: Bearer <host_token>`"),
            ),
            (Who::Cohost, C::Host, Ok(())),
            (Who::Cohost, C::Cohost, Ok(())),
            (
                Who::Cohost,
                C::Anyone,
                unauthorized(
                    "skip is for the host and co-hosts: send `Authorization: Bearer <token>`",
                ),
            ),
            (Who::Anyone, C::Host, Ok(())),
            (Who::Anyone, C::Cohost, Ok(())),
            (Who::Anyone, C::Anyone, Ok(())),
        ];
        for (who, caller, expected) in cases {
            let permissions = Permissions {
                skip: who,
                ..Permissions::default()
            };
            assert_eq!(
                permissions.check(Group::Skip, caller),
                expected,
                "{who:?} {caller:?}"
            );
        }
        let cohosts = Permissions {
            queue_edit: Who::Cohost,
            ..Permissions::default()
        };
        assert_eq!(cohosts.check(Group::QueueEdit, C::Cohost), Ok(()));
    }
}
