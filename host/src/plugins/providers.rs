//! Which subscribed modules may provide which interface at a municipality, and the cycles a
//! choice (or a grant) would make. A module that provides interface A and is granted the
//! capability of interface B, whose provider is granted A's, would call itself through the
//! other forever: such a configuration is refused when it is made, naming the loop. (At run
//! time a provider that reaches the interface it is answering is refused too, as a
//! backstop: `capabilities::provided`.)

use crate::app::App;
use crate::capabilities::Capability;
use crate::catalog::manifest::ProvidedInterface;
use crate::lgcode::LgCode;
use std::collections::{BTreeMap, BTreeSet};

/// A configuration change to judge before it is written.
pub enum Proposed<'a> {
    /// `interface` provided by this module (none: no module).
    Choice(ProvidedInterface, Option<&'a str>),
    /// This module with these capabilities (requested ∩ granted).
    Grants(&'a str, &'a BTreeSet<Capability>),
}

/// The loop `proposed` would make among `lg_code`'s providers, described for a refusal
/// (`receipts → arrears-unit → receipts`), or none.
pub fn cycle(app: &App, lg_code: &LgCode, proposed: Proposed<'_>) -> Option<String> {
    let mut chosen: BTreeMap<ProvidedInterface, String> = app.live.providers_for(lg_code);
    if let Proposed::Choice(interface, module) = &proposed {
        match module {
            Some(m) => chosen.insert(*interface, m.to_string()),
            None => chosen.remove(interface),
        };
    }
    let capabilities = |module: &str| -> BTreeSet<Capability> {
        match &proposed {
            Proposed::Grants(m, capabilities) if *m == module => (*capabilities).clone(),
            _ => app.live.resolve(module, lg_code).map(|r| r.capabilities.clone()).unwrap_or_default(),
        }
    };
    // Interface → the interfaces its provider consumes that a module provides.
    let edges: BTreeMap<ProvidedInterface, Vec<ProvidedInterface>> = chosen
        .iter()
        .map(|(interface, module)| {
            let consumes = capabilities(module);
            (*interface, chosen.keys().copied().filter(|other| consumes.contains(&other.capability())).collect())
        })
        .collect();
    for start in chosen.keys() {
        if let Some(path) = find_path(&edges, *start, *start, &mut BTreeSet::new()) {
            let mut words = Vec::new();
            let mut at = *start;
            for next in path {
                words.push(format!("{} (provided by `{}`, which is granted `{}`)", at.name(), chosen[&at], next.capability().name()));
                at = next;
            }
            words.push(start.name().to_string());
            return Some(words.join(" → "));
        }
    }
    None
}

/// A path of edges from `from` back to `to`, if there is one.
fn find_path(edges: &BTreeMap<ProvidedInterface, Vec<ProvidedInterface>>, from: ProvidedInterface, to: ProvidedInterface, seen: &mut BTreeSet<ProvidedInterface>) -> Option<Vec<ProvidedInterface>> {
    for &next in edges.get(&from).into_iter().flatten() {
        if next == to {
            return Some(vec![next]);
        }
        if seen.insert(next)
            && let Some(mut rest) = find_path(edges, next, to, seen)
        {
            rest.insert(0, next);
            return Some(rest);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProvidedInterface::{Receipts, ResidentRegistry};

    #[test]
    fn paths_back_to_the_start_are_found() {
        let edges = BTreeMap::from([(Receipts, vec![ResidentRegistry]), (ResidentRegistry, vec![Receipts])]);
        assert_eq!(find_path(&edges, Receipts, Receipts, &mut BTreeSet::new()), Some(vec![ResidentRegistry, Receipts]));
        let to_itself = BTreeMap::from([(Receipts, vec![Receipts])]);
        assert_eq!(find_path(&to_itself, Receipts, Receipts, &mut BTreeSet::new()), Some(vec![Receipts]));
        let chain = BTreeMap::from([(Receipts, vec![ResidentRegistry]), (ResidentRegistry, vec![])]);
        assert_eq!(find_path(&chain, Receipts, Receipts, &mut BTreeSet::new()), None);
    }
}
