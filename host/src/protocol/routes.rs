//! Routing by task name, as Celery's `task_routes`: `"math.*" = "cpu"`.
//!
//! Patterns are exact names or globs where `*` matches any run of
//! characters. When several match, the most specific wins: an exact name
//! first, then the pattern with the most literal characters. (Celery takes
//! the first match of an ordered list; TOML tables have no order, so
//! specificity is the rule that reads the same in every file.)

/// Task-name patterns and their queues.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routes {
    /// Most specific first.
    routes: Vec<(String, String)>,
}

impl Routes {
    pub fn new(routes: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut routes: Vec<(String, String)> = routes.into_iter().collect();
        routes.sort_by_key(|(pattern, _)| (pattern.contains('*'), std::cmp::Reverse(pattern.replace('*', "").len())));
        Self { routes }
    }

    /// Adds routes; a pattern given again replaces the earlier queue.
    pub fn extend(&mut self, more: impl IntoIterator<Item = (String, String)>) {
        let mut all = std::mem::take(&mut self.routes);
        for (pattern, queue) in more {
            all.retain(|(existing, _)| *existing != pattern);
            all.push((pattern, queue));
        }
        *self = Self::new(all);
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The queue for `task`, if a route matches it.
    pub fn queue_for(&self, task: &str) -> Option<&str> {
        self.routes.iter().find(|(pattern, _)| glob_match(pattern, task)).map(|(_, queue)| queue.as_str())
    }
}

/// `*` matches any run of characters (including dots); nothing else is special.
fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_celery_task_routes() {
        assert!(glob_match("math.*", "math.add"));
        assert!(!glob_match("math.*", "mathx.add"));
        assert!(glob_match("*.add", "math.add"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*c*e", "abcde"));
        assert!(!glob_match("a*c*e", "abcd"));
        assert!(glob_match("math.add", "math.add"));
        assert!(!glob_match("math.add", "math.adder"));
    }

    #[test]
    fn the_most_specific_route_wins() {
        let routes = Routes::new([
            ("*".to_string(), "default".to_string()),
            ("math.*".to_string(), "cpu".to_string()),
            ("math.add".to_string(), "fast".to_string()),
        ]);
        assert_eq!(routes.queue_for("math.add"), Some("fast"));
        assert_eq!(routes.queue_for("math.mul"), Some("cpu"));
        assert_eq!(routes.queue_for("email.send"), Some("default"));
        let mut routes = Routes::new([("math.*".to_string(), "cpu".to_string())]);
        routes.extend([("math.*".to_string(), "gpu".to_string())]);
        assert_eq!(routes.queue_for("math.mul"), Some("gpu"));
        assert_eq!(Routes::default().queue_for("math.mul"), None);
    }
}
