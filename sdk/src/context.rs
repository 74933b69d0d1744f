//! Which municipality and module version is serving this request.

use crate::platform::context as raw;

pub use raw::{ModuleInfo, Municipality};

pub fn municipality() -> Municipality {
    raw::current_municipality()
}

pub fn module_info() -> ModuleInfo {
    raw::current_module()
}

pub fn request_id() -> String {
    raw::request_id()
}

/// The title of the municipality's head, from its name: 区長 (an 特別区), 市長, 町長 or 村長.
/// Use it wherever a page names the head, so 千代田区 never says 「市長」.
pub fn head_title() -> &'static str {
    head_title_of(&municipality().name)
}

fn head_title_of(name: &str) -> &'static str {
    match name.chars().last() {
        Some('区') => "区長",
        Some('町') => "町長",
        Some('村') => "村長",
        _ => "市長",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_head_is_named_for_the_kind_of_municipality() {
        assert_eq!(super::head_title_of("千代田区"), "区長");
        assert_eq!(super::head_title_of("札幌市"), "市長");
        assert_eq!(super::head_title_of("ニセコ町"), "町長");
        assert_eq!(super::head_title_of("檜原村"), "村長");
    }
}
