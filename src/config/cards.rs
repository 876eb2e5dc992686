//! What cards show beyond the post: the link to the post (`post_url`) and
//! display names for groups (`[groups]`).

use std::collections::BTreeMap;

use super::loader::Loader;

/// How a card links to the post and names groups.
#[derive(Debug, Clone, Default)]
pub struct CardSettings {
    /// A link template (`{post_id}`, `{group_id}`, `{customer_id}`),
    /// checked to be http(s).
    pub post_url: Option<String>,
    /// Group ID → the name a card shows (else the rules file's name).
    pub groups: BTreeMap<String, String>,
}

impl CardSettings {
    pub(super) fn build(
        post_url: Option<String>,
        groups: BTreeMap<String, String>,
        l: &mut Loader,
    ) -> Self {
        if let Some(url) = &post_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            let at = l.key("post_url");
            l.problem(format!(
                "{at} must start with https:// (like \"https://community.example.com/posts/{{post_id}}\")"
            ));
        }
        Self { post_url, groups }
    }
}
