//! Topic exchange matching (AMQP 0-9-1 §3.1.3.3), with RabbitMQ's semantics.
//!
//! A binding pattern and a routing key are lists of words separated by `.`. In a pattern, `*`
//! matches exactly one word and `#` matches zero or more words; every other word matches only
//! itself (a `*` or `#` inside a routing key is an ordinary word). Empty words are words: `a..b`
//! has three words, `a.` has two and `.` has two. The one exception, as in RabbitMQ, is the empty
//! string, which has no words at all: the routing key `""` is matched by the patterns `""`, `#`
//! and `#.#`, but not by `*` nor by `#.` (checked against RabbitMQ 3.10, see the tests).
//!
//! [`TopicTrie`] indexes bindings by a trie of pattern words. Routing walks the trie with the
//! *set* of nodes that the words read so far can have reached (an NFA simulation in which a node
//! reached through `#` loops on any word), so a routing key of `w` words costs
//! O(`w` × active nodes) whatever the number of bindings and however many `#` a pattern holds:
//! there is no backtracking to go exponential. [`topic_matches`] is the plain recursive reference
//! that the trie is tested against.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::hash::BuildHasher;

use foldhash::fast::FixedState;
use hashbrown::HashTable;

/// Index of a node in [`TopicTrie::nodes`].
type NodeId = usize;
/// "No such node" in the `star`/`hash`/`parent` links.
const NONE: NodeId = NodeId::MAX;
/// The root is node 0 and is never freed; it holds the bindings of the empty pattern.
const ROOT: NodeId = 0;
/// Odd multiplier that spreads a node id over the whole hash before it is mixed with a word hash.
const NODE_MIX: u64 = 0x9E37_79B9_7F4A_7C15;
/// Active states kept on the stack before [`StateBuf`] spills to the heap.
const INLINE_STATES: usize = 16;

/// What one pattern word is.
#[derive(Clone, Copy)]
enum Word<'a> {
    Star,
    Hash,
    Literal(&'a str),
}

impl<'a> Word<'a> {
    fn of(word: &'a str) -> Self {
        match word {
            "*" => Word::Star,
            "#" => Word::Hash,
            w => Word::Literal(w),
        }
    }
}

/// The words of a pattern or routing key, first to last. The empty string has none.
fn words(s: &str) -> core::str::Split<'_, char> {
    let mut it = s.split('.');
    if s.is_empty() {
        it.next();
    }
    it
}

/// The words of a pattern or routing key, last to first. The empty string has none.
fn words_rev(s: &str) -> core::str::RSplit<'_, char> {
    let mut it = s.rsplit('.');
    if s.is_empty() {
        it.next();
    }
    it
}

#[derive(Clone)]
struct Node<K> {
    /// `NONE` for the root.
    parent: NodeId,
    /// Child through a `*` word, or `NONE`.
    star: NodeId,
    /// Child through a `#` word, or `NONE`.
    hash: NodeId,
    /// How many literal edges leave this node (they live in [`TopicTrie::edges`]).
    literals: usize,
    /// Reached through a `#` edge: this node also consumes any word and stays active.
    is_hash: bool,
    /// Keys bound with the pattern that ends here; sorted, unique.
    keys: Vec<K>,
}

impl<K> Node<K> {
    fn new(parent: NodeId, is_hash: bool) -> Self {
        Node {
            parent,
            star: NONE,
            hash: NONE,
            literals: 0,
            is_hash,
            keys: Vec::new(),
        }
    }

    fn is_unused(&self) -> bool {
        self.keys.is_empty() && self.star == NONE && self.hash == NONE && self.literals == 0
    }
}

/// A literal edge `parent --word--> child`.
#[derive(Clone)]
struct Edge {
    hash: u64,
    parent: NodeId,
    child: NodeId,
    word: Box<str>,
}

/// Topic bindings indexed by a trie of words, so routing costs O(words), not O(bindings).
///
/// Each `(pattern, key)` pair is stored once; `K` is typically a queue name or id. Matching is
/// deterministic: [`matches`](Self::matches) appends keys in ascending order.
#[derive(Clone)]
pub struct TopicTrie<K> {
    /// Arena of nodes; freed slots are listed in `free` and reused.
    nodes: Vec<Node<K>>,
    free: Vec<NodeId>,
    /// Literal edges of every node, keyed by `(parent, word)`.
    edges: HashTable<Edge>,
    /// Fixed-seed hasher: routing must be deterministic.
    hasher: FixedState,
    /// Number of `(pattern, key)` pairs.
    len: usize,
}

impl<K> fmt::Debug for TopicTrie<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicTrie")
            .field("len", &self.len)
            .field("nodes", &(self.nodes.len() - self.free.len()))
            .finish_non_exhaustive()
    }
}

impl<K: Clone + Eq + Ord> Default for TopicTrie<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Ord> TopicTrie<K> {
    /// An empty trie.
    pub fn new() -> Self {
        TopicTrie {
            nodes: vec![Node::new(NONE, false)],
            free: Vec::new(),
            edges: HashTable::new(),
            hasher: FixedState::default(),
            len: 0,
        }
    }

    /// Binds `key` with `pattern`. Returns `false` (and changes nothing) if that exact pair is
    /// already present.
    pub fn insert(&mut self, pattern: &str, key: K) -> bool {
        let mut node = ROOT;
        for w in words(pattern) {
            let word = Word::of(w);
            let next = self.child(node, word);
            node = if next == NONE {
                self.add_child(node, word)
            } else {
                next
            };
        }
        let keys = &mut self.nodes[node].keys;
        match keys.binary_search(&key) {
            Ok(_) => false,
            Err(at) => {
                keys.insert(at, key);
                self.len += 1;
                true
            }
        }
    }

    /// Unbinds `key` from `pattern`. Returns `false` if that pair was not present. Nodes left
    /// with neither bindings nor children are freed.
    pub fn remove(&mut self, pattern: &str, key: &K) -> bool {
        let mut node = ROOT;
        for w in words(pattern) {
            node = self.child(node, Word::of(w));
            if node == NONE {
                return false;
            }
        }
        let keys = &mut self.nodes[node].keys;
        let Ok(at) = keys.binary_search(key) else {
            return false;
        };
        keys.remove(at);
        self.len -= 1;

        // Prune upwards: the pattern's words read backwards name the edges climbed.
        let mut back = words_rev(pattern);
        while node != ROOT && self.nodes[node].is_unused() {
            let Some(w) = back.next() else { break };
            let parent = self.nodes[node].parent;
            self.unlink(parent, Word::of(w));
            self.nodes[node] = Node::new(NONE, false);
            self.free.push(node);
            node = parent;
        }
        true
    }

    /// Whether no pair is bound.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of `(pattern, key)` pairs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Appends every key whose pattern matches `routing_key` to `out`, each key once.
    ///
    /// The appended keys are in ascending order; what `out` held before is left alone. This does
    /// not allocate unless more than a handful of trie nodes are active at once, apart from
    /// growing `out`.
    pub fn matches(&self, routing_key: &str, out: &mut Vec<K>) {
        let mut active = StateBuf::new();
        let mut next = StateBuf::new();
        self.push_closure(ROOT, &mut active);
        for w in words(routing_key) {
            let word_hash = self.hasher.hash_one(w);
            next.clear();
            for &n in active.as_slice() {
                let node = &self.nodes[n];
                if node.is_hash {
                    // `active` is closed under `#` edges, so `n`'s own closure is already in it.
                    next.push(n);
                }
                let lit = self.literal_child(n, w, word_hash);
                if lit != NONE {
                    self.push_closure(lit, &mut next);
                }
                if node.star != NONE {
                    self.push_closure(node.star, &mut next);
                }
            }
            if next.is_empty() {
                return;
            }
            next.sort_dedup();
            core::mem::swap(&mut active, &mut next);
        }

        let start = out.len();
        let mut sources = 0usize;
        for &n in active.as_slice() {
            let keys = &self.nodes[n].keys;
            if !keys.is_empty() {
                sources += 1;
                out.extend_from_slice(keys);
            }
        }
        if sources > 1 {
            sort_dedup_tail(out, start);
        }
    }

    /// Pushes `node` and the nodes reached from it through `#` edges (a `#` may match no word).
    fn push_closure(&self, mut node: NodeId, into: &mut StateBuf) {
        while node != NONE {
            into.push(node);
            node = self.nodes[node].hash;
        }
    }

    fn child(&self, parent: NodeId, word: Word<'_>) -> NodeId {
        match word {
            Word::Star => self.nodes[parent].star,
            Word::Hash => self.nodes[parent].hash,
            Word::Literal(w) => self.literal_child(parent, w, self.hasher.hash_one(w)),
        }
    }

    fn literal_child(&self, parent: NodeId, word: &str, word_hash: u64) -> NodeId {
        self.edges
            .find(edge_hash(word_hash, parent), |e| {
                e.parent == parent && *e.word == *word
            })
            .map_or(NONE, |e| e.child)
    }

    fn add_child(&mut self, parent: NodeId, word: Word<'_>) -> NodeId {
        let node = Node::new(parent, matches!(word, Word::Hash));
        let id = match self.free.pop() {
            Some(id) => {
                self.nodes[id] = node;
                id
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        match word {
            Word::Star => self.nodes[parent].star = id,
            Word::Hash => self.nodes[parent].hash = id,
            Word::Literal(w) => {
                let hash = edge_hash(self.hasher.hash_one(w), parent);
                let edge = Edge {
                    hash,
                    parent,
                    child: id,
                    word: w.into(),
                };
                self.edges.insert_unique(hash, edge, |e| e.hash);
                self.nodes[parent].literals += 1;
            }
        }
        id
    }

    fn unlink(&mut self, parent: NodeId, word: Word<'_>) {
        match word {
            Word::Star => self.nodes[parent].star = NONE,
            Word::Hash => self.nodes[parent].hash = NONE,
            Word::Literal(w) => {
                let hash = edge_hash(self.hasher.hash_one(w), parent);
                if let Ok(entry) = self
                    .edges
                    .find_entry(hash, |e| e.parent == parent && *e.word == *w)
                {
                    entry.remove();
                    self.nodes[parent].literals -= 1;
                }
            }
        }
    }

    /// Nodes in use, the root included (for tests of pruning).
    #[cfg(test)]
    fn live_nodes(&self) -> usize {
        self.nodes.len() - self.free.len()
    }
}

/// Hash of the literal edge `(parent, word)` from the hash of `word` alone, so that routing
/// hashes each routing-key word once however many nodes are active.
fn edge_hash(word_hash: u64, parent: NodeId) -> u64 {
    word_hash ^ (parent as u64).wrapping_mul(NODE_MIX)
}

/// Sorts `out[start..]` and removes its duplicates, leaving `out[..start]` alone.
fn sort_dedup_tail<K: Ord>(out: &mut Vec<K>, start: usize) {
    let tail = &mut out[start..];
    tail.sort_unstable();
    let mut kept = 0;
    for read in 0..tail.len() {
        if kept == 0 || tail[read] != tail[kept - 1] {
            tail.swap(kept, read);
            kept += 1;
        }
    }
    out.truncate(start + kept);
}

/// A set of active trie nodes under construction: on the stack while small, spilling to the heap
/// when large. Duplicates are allowed until [`sort_dedup`](Self::sort_dedup).
struct StateBuf {
    inline: [NodeId; INLINE_STATES],
    len: usize,
    /// In use (holding every element) once non-empty.
    spill: Vec<NodeId>,
}

impl StateBuf {
    fn new() -> Self {
        StateBuf {
            inline: [0; INLINE_STATES],
            len: 0,
            spill: Vec::new(),
        }
    }

    fn push(&mut self, node: NodeId) {
        if self.spill.is_empty() {
            if self.len < INLINE_STATES {
                self.inline[self.len] = node;
                self.len += 1;
                return;
            }
            self.spill.extend_from_slice(&self.inline[..self.len]);
        }
        self.spill.push(node);
    }

    fn as_slice(&self) -> &[NodeId] {
        if self.spill.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spill
        }
    }

    fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    fn clear(&mut self) {
        self.len = 0;
        self.spill.clear();
    }

    fn sort_dedup(&mut self) {
        if self.spill.is_empty() {
            let live = &mut self.inline[..self.len];
            live.sort_unstable();
            let mut kept = 0;
            for read in 0..live.len() {
                if kept == 0 || live[read] != live[kept - 1] {
                    live[kept] = live[read];
                    kept += 1;
                }
            }
            self.len = kept;
        } else {
            self.spill.sort_unstable();
            self.spill.dedup();
        }
    }
}

/// Whether `pattern` matches `routing_key`: the obviously-correct recursive reference matcher.
///
/// Same semantics as [`TopicTrie`] (see the module docs). Its cost grows with the product of
/// the routing key's length over each non-adjacent `#`; the trie's does not, so route with the
/// trie and keep this for oracles and tests.
pub fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    match_rest(rest_of(pattern), rest_of(routing_key))
}

/// Words still to match: `None` for no words, `Some(s)` for the words of `s` (`Some("")` is one
/// empty word).
type Rest<'a> = Option<&'a str>;

fn rest_of(s: &str) -> Rest<'_> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

fn split_first(rest: Rest<'_>) -> Option<(&str, Rest<'_>)> {
    let s = rest?;
    Some(match s.split_once('.') {
        Some((first, more)) => (first, Some(more)),
        None => (s, None),
    })
}

fn match_rest(pattern: Rest<'_>, key: Rest<'_>) -> bool {
    let Some((p, p_more)) = split_first(pattern) else {
        return key.is_none();
    };
    match p {
        // `#.#` matches what `#` matches: skip the first of adjacent hashes.
        "#" if matches!(split_first(p_more), Some(("#", _))) => match_rest(p_more, key),
        // `#` matches no word, or one word and then stays to match more.
        "#" => {
            match_rest(p_more, key)
                || split_first(key).is_some_and(|(_, k_more)| match_rest(pattern, k_more))
        }
        _ => split_first(key)
            .is_some_and(|(k, k_more)| (p == "*" || p == k) && match_rest(p_more, k_more)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;
    use alloc::string::{String, ToString};
    use proptest::prelude::*;

    fn trie_of(bindings: &[(&str, u32)]) -> TopicTrie<u32> {
        let mut trie = TopicTrie::new();
        for &(pattern, key) in bindings {
            trie.insert(pattern, key);
        }
        trie
    }

    fn routed(trie: &TopicTrie<u32>, routing_key: &str) -> Vec<u32> {
        let mut out = Vec::new();
        trie.matches(routing_key, &mut out);
        out
    }

    /// Checks the trie (with `pattern` bound alone) and the reference agree on `expected`.
    fn check(pattern: &str, routing_key: &str, expected: bool) {
        assert_eq!(
            topic_matches(pattern, routing_key),
            expected,
            "reference: {pattern:?} vs {routing_key:?}"
        );
        let trie = trie_of(&[(pattern, 7)]);
        let want: Vec<u32> = if expected { vec![7] } else { vec![] };
        assert_eq!(
            routed(&trie, routing_key),
            want,
            "trie: {pattern:?} vs {routing_key:?}"
        );
    }

    #[test]
    fn literal_words_match_only_themselves() {
        check("a.b", "a.b", true);
        check("a.b", "a.c", false);
        check("a.b", "a", false);
        check("a.b", "a.b.c", false);
        check("abc", "ab", false);
    }

    #[test]
    fn star_matches_exactly_one_word() {
        check("*", "a", true);
        check("a.*", "a.b", true);
        check("a.*", "a", false);
        check("a.*", "a.b.c", false);
        check("*.*", "a.b", true);
        check("a.*.c", "a.xyz.c", true);
    }

    #[test]
    fn hash_matches_zero_words() {
        check("abc.#", "abc", true);
        check("#.abc", "abc", true);
        check("a.#.b", "a.b", true);
        check("#", "a", true);
    }

    #[test]
    fn hash_matches_many_words() {
        check("abc.#", "abc.d.e.f", true);
        check("#.z", "a.b.c.z", true);
        check("a.#.b", "a.x.y.b", true);
        check("a.#.b", "a.x.y.c", false);
        check("a.#.b.c", "a.b.c.b.c", true);
    }

    #[test]
    fn hash_alone_matches_everything_including_the_empty_key() {
        for key in ["", "a", ".", "a.b.c", "..", "#", "*"] {
            check("#", key, true);
            check("#.#", key, true);
        }
    }

    #[test]
    fn empty_routing_key_has_no_words() {
        check("", "", true);
        check("#", "", true);
        check("*", "", false);
        check("#.", "", false);
        check("", ".", false);
        check("", "a", false);
    }

    #[test]
    fn empty_words_are_words() {
        check("a.*.b", "a..b", true);
        check("a.b", "a..b", false);
        check("*.*.*", "a..b", true);
        check("*", ".", false);
        check("*.*", ".", true);
        check("a.*", "a.", true);
        check("a.", "a.", true);
        check("a", "a.", false);
        check("#.", "a.", true);
        check("..", "..", true);
    }

    #[test]
    fn wildcards_in_the_routing_key_are_plain_words() {
        check("*", "*", true);
        check("#", "*", true);
        check("a", "*", false);
        check("a.b", "a.*", false);
        check("a.b", "a.#", false);
        check("a.*", "a.#", true);
    }

    #[test]
    fn adjacent_hashes_match_like_one() {
        check("#.#", "a.b", true);
        check("a.#.#.b", "a.b", true);
        check("a.#.#.b", "a.x.b", true);
        check("a.#.#.b", "a.x.y.z.b", true);
        check("#.#.a", "b", false);
    }

    /// Every pattern against every key, as observed on RabbitMQ 3.10.8 (bind one queue per
    /// pattern to a topic exchange, publish each key once, list what each queue received).
    #[test]
    fn agrees_with_rabbitmq_3_10() {
        const KEYS: [&str; 11] = [
            "", "a", ".", "a.", ".a", "a.b", "a..b", "..", "a.x.y.b", "b.a", "x.a",
        ];
        const ALL: &[&str] = &KEYS;
        const OBSERVED: &[(&str, &[&str])] = &[
            ("", &[""]),
            ("#", ALL),
            ("*", &["a"]),
            ("#.#", ALL),
            (
                "*.#",
                &[
                    "a", ".", "a.", ".a", "a.b", "a..b", "..", "a.x.y.b", "b.a", "x.a",
                ],
            ),
            (
                "#.*",
                &[
                    "a", ".", "a.", ".a", "a.b", "a..b", "..", "a.x.y.b", "b.a", "x.a",
                ],
            ),
            ("a", &["a"]),
            ("a.#", &["a", "a.", "a.b", "a..b", "a.x.y.b"]),
            ("a.*", &["a.", "a.b"]),
            ("a.", &["a."]),
            (".a", &[".a"]),
            (".", &["."]),
            ("*.*", &[".", "a.", ".a", "a.b", "b.a", "x.a"]),
            ("a.#.#.b", &["a.b", "a..b", "a.x.y.b"]),
            ("#.a", &["a", ".a", "b.a", "x.a"]),
            ("a.#.b", &["a.b", "a..b", "a.x.y.b"]),
            ("..", &[".."]),
            ("*.", &[".", "a."]),
            ("#.", &[".", "a.", ".."]),
        ];
        let mut trie = TopicTrie::new();
        for (i, (pattern, _)) in OBSERVED.iter().enumerate() {
            assert!(trie.insert(pattern, i));
        }
        for key in KEYS {
            let expected: Vec<usize> = OBSERVED
                .iter()
                .enumerate()
                .filter(|(_, (_, keys))| keys.contains(&key))
                .map(|(i, _)| i)
                .collect();
            let mut got = Vec::new();
            trie.matches(key, &mut got);
            assert_eq!(got, expected, "trie, routing key {key:?}");
            for (i, (pattern, _)) in OBSERVED.iter().enumerate() {
                assert_eq!(
                    topic_matches(pattern, key),
                    expected.contains(&i),
                    "reference: {pattern:?} vs {key:?}"
                );
            }
        }
    }

    #[test]
    fn insert_reports_duplicates_and_len_counts_pairs() {
        let mut trie = TopicTrie::new();
        assert!(trie.is_empty());
        assert!(trie.insert("a.*", 1));
        assert!(!trie.insert("a.*", 1));
        assert!(trie.insert("a.*", 2));
        assert!(trie.insert("a.#", 1));
        assert!(trie.insert("", 1));
        assert!(!trie.insert("", 1));
        assert_eq!(trie.len(), 4);
        assert!(!trie.is_empty());
    }

    #[test]
    fn key_bound_through_several_patterns_is_reported_once() {
        let trie = trie_of(&[("a.b", 1), ("a.*", 1), ("#", 1), ("#.b", 2), ("*.*", 3)]);
        assert_eq!(routed(&trie, "a.b"), vec![1, 2, 3]);
        assert_eq!(routed(&trie, "x.y"), vec![1, 3]);
        assert_eq!(routed(&trie, "x"), vec![1]);
    }

    #[test]
    fn matches_appends_in_order_after_existing_contents() {
        let trie = trie_of(&[("a.#", 9), ("#", 3), ("a.*", 5), ("a.b", 5)]);
        let mut out = vec![100, 0, 100];
        trie.matches("a.b", &mut out);
        assert_eq!(out, vec![100, 0, 100, 3, 5, 9]);
        trie.matches("zzz", &mut out);
        assert_eq!(out, vec![100, 0, 100, 3, 5, 9, 3]);
    }

    #[test]
    fn no_match_leaves_out_untouched() {
        let trie = trie_of(&[("a.b", 1), ("a.*.c", 2)]);
        let mut out = vec![42];
        trie.matches("b.a", &mut out);
        trie.matches("a.b.d", &mut out);
        trie.matches("", &mut out);
        assert_eq!(out, vec![42]);
    }

    #[test]
    fn remove_reports_absent_pairs() {
        let mut trie = trie_of(&[("a.b", 1)]);
        assert!(!trie.remove("a.b", &2));
        assert!(!trie.remove("a", &1));
        assert!(!trie.remove("a.b.c", &1));
        assert!(!trie.remove("a.*", &1));
        assert!(trie.remove("a.b", &1));
        assert!(!trie.remove("a.b", &1));
        assert!(trie.is_empty());
    }

    #[test]
    fn remove_prunes_empty_nodes_and_keeps_the_rest() {
        let mut trie = trie_of(&[("a.b.c", 1), ("a.#", 2), ("a.*.c", 3), ("", 4), ("a.b", 5)]);
        assert_eq!(trie.live_nodes(), 7);
        assert!(trie.remove("a.b.c", &1));
        assert_eq!(trie.live_nodes(), 6, "only the `c` leaf under a.b goes");
        assert_eq!(routed(&trie, "a.b.c"), vec![2, 3]);
        assert!(trie.remove("a.*.c", &3));
        assert_eq!(trie.live_nodes(), 4);
        assert!(trie.remove("a.b", &5));
        assert_eq!(trie.live_nodes(), 3);
        assert_eq!(routed(&trie, "a.b"), vec![2]);
        assert!(trie.remove("a.#", &2));
        assert!(trie.remove("", &4));
        assert!(trie.is_empty());
        assert_eq!(trie.live_nodes(), 1);
        assert!(trie.edges.is_empty());
        assert_eq!(routed(&trie, "a.b"), Vec::<u32>::new());
    }

    #[test]
    fn freed_nodes_are_reused() {
        let mut trie = TopicTrie::new();
        for round in 0..10u32 {
            assert!(trie.insert("x.y.z.#", round));
            assert!(trie.insert("x.*.w", round));
            assert!(trie.remove("x.y.z.#", &round));
            assert!(trie.remove("x.*.w", &round));
        }
        assert_eq!(trie.nodes.len(), 7);
        assert_eq!(trie.live_nodes(), 1);
    }

    #[test]
    fn many_hashes_do_not_blow_up() {
        let long_key: String = (0..250)
            .map(|i| if i % 2 == 0 { "a." } else { "x." })
            .collect();
        let long_key = long_key.trim_end_matches('.');
        let mut trie = TopicTrie::new();
        trie.insert("a.#.#.#.#.#.#.#.#.#.#.#.#.b", 1u32);
        trie.insert("#.a.#.a.#.a.#.a.#.a.#.a.#.q", 2);
        trie.insert("#.a.#.a.#.a.#.a.#.a.#.a.#.x", 3);
        trie.insert("#.*.#.*.#.*.#.*.#.*.#", 4);
        trie.insert("*.#.*.#.*.#.*.#.*.#.*.#.*.#.*.#.*", 5);
        for round in 0..20 {
            let mut out = Vec::new();
            trie.matches(long_key, &mut out);
            assert_eq!(out, vec![3, 4, 5], "round {round}");
        }
        // The reference copes with adjacent hashes however many there are.
        assert!(topic_matches(
            "a.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.b",
            &(String::from(long_key) + ".b")
        ));
        assert!(!topic_matches(
            "a.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.b",
            long_key
        ));
    }

    #[test]
    fn many_active_states_spill_to_the_heap_correctly() {
        // Every pattern of up to four words over {a, b, *, #}: reading `a.a.a` leaves far more
        // than `INLINE_STATES` nodes active.
        let mut trie = TopicTrie::new();
        let mut bindings = Vec::new();
        let mut id = 0u32;
        for len in 0..=4u32 {
            for mut digits in 0..4u32.pow(len) {
                let mut words = Vec::new();
                for _ in 0..len {
                    words.push(["a", "b", "*", "#"][(digits % 4) as usize]);
                    digits /= 4;
                }
                let pattern = words.join(".");
                assert!(trie.insert(&pattern, id));
                bindings.push((pattern, id));
                id += 1;
            }
        }
        assert_eq!(trie.len(), 341);
        for key in [
            "a.a.a",
            "a.b.a.b",
            "a.a.a.a.a.a.a",
            "b",
            "",
            "a..b.",
            "c.d.e.f.g.h",
        ] {
            let want: Vec<u32> = bindings
                .iter()
                .filter(|(p, _)| topic_matches(p, key))
                .map(|&(_, k)| k)
                .collect();
            assert!(!want.is_empty());
            assert_eq!(routed(&trie, key), want, "key {key:?}");
        }
    }

    #[test]
    fn state_buf_spills_and_dedups() {
        let mut buf = StateBuf::new();
        for i in (0..40).rev() {
            buf.push(i % 25);
        }
        buf.sort_dedup();
        assert_eq!(buf.as_slice(), (0..25).collect::<Vec<_>>().as_slice());
        buf.clear();
        assert!(buf.is_empty());
        for i in [3, 1, 3, 2, 1] {
            buf.push(i);
        }
        buf.sort_dedup();
        assert_eq!(buf.as_slice(), &[1, 2, 3]);
    }

    fn pattern_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(&["a", "b", "", "*", "#"][..]), 0..6)
            .prop_map(|words| words.join("."))
    }

    fn key_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(&["a", "b", "", "*"][..]), 0..7)
            .prop_map(|words| words.join("."))
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(String, u8),
        Remove(String, u8),
        Route(String),
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (pattern_strategy(), 0..6u8).prop_map(|(p, k)| Op::Insert(p, k)),
            2 => (pattern_strategy(), 0..6u8).prop_map(|(p, k)| Op::Remove(p, k)),
            2 => key_strategy().prop_map(Op::Route),
        ]
    }

    fn expected(bindings: &BTreeSet<(String, u8)>, routing_key: &str) -> Vec<u8> {
        let keys: BTreeSet<u8> = bindings
            .iter()
            .filter(|(p, _)| topic_matches(p, routing_key))
            .map(|&(_, k)| k)
            .collect();
        keys.into_iter().collect()
    }

    proptest! {
        #[test]
        fn trie_agrees_with_reference_matcher(
            bindings in prop::collection::vec((pattern_strategy(), 0..8u8), 0..24),
            keys in prop::collection::vec(key_strategy(), 1..8),
        ) {
            let mut trie = TopicTrie::new();
            let mut model = BTreeSet::new();
            for (pattern, key) in &bindings {
                prop_assert_eq!(trie.insert(pattern, *key), model.insert((pattern.clone(), *key)));
            }
            prop_assert_eq!(trie.len(), model.len());
            for routing_key in &keys {
                let mut got = Vec::new();
                trie.matches(routing_key, &mut got);
                prop_assert_eq!(got, expected(&model, routing_key), "routing key {:?}", routing_key);
            }
        }

        #[test]
        fn trie_tracks_a_set_model_under_inserts_and_removes(
            ops in prop::collection::vec(op_strategy(), 0..60),
        ) {
            let mut trie = TopicTrie::new();
            let mut model: BTreeSet<(String, u8)> = BTreeSet::new();
            for op in &ops {
                match op {
                    Op::Insert(p, k) => {
                        prop_assert_eq!(trie.insert(p, *k), model.insert((p.clone(), *k)));
                    }
                    Op::Remove(p, k) => {
                        prop_assert_eq!(trie.remove(p, k), model.remove(&(p.clone(), *k)));
                    }
                    Op::Route(rk) => {
                        let mut got = Vec::new();
                        trie.matches(rk, &mut got);
                        prop_assert_eq!(got, expected(&model, rk), "routing key {:?}", rk);
                    }
                }
                prop_assert_eq!(trie.len(), model.len());
                prop_assert_eq!(trie.is_empty(), model.is_empty());
            }
            for (p, k) in &model {
                prop_assert!(trie.remove(p, k));
            }
            prop_assert!(trie.is_empty());
            prop_assert_eq!(trie.live_nodes(), 1);
            prop_assert!(trie.edges.is_empty());
        }

        #[test]
        fn doubling_a_hash_changes_nothing(
            pattern in pattern_strategy(),
            routing_key in key_strategy(),
        ) {
            let words: Vec<&str> = words(&pattern).collect();
            let doubled: Vec<&str> = words
                .iter()
                .flat_map(|&w| if w == "#" { vec!["#", "#"] } else { vec![w] })
                .collect();
            let doubled = doubled.join(".");
            prop_assert_eq!(topic_matches(&pattern, &routing_key), topic_matches(&doubled, &routing_key));
            let trie = {
                let mut t = TopicTrie::new();
                t.insert(&doubled, 0u8);
                t
            };
            let mut got = Vec::new();
            trie.matches(&routing_key, &mut got);
            prop_assert_eq!(!got.is_empty(), topic_matches(&pattern, &routing_key));
        }

        #[test]
        fn a_literal_pattern_matches_exactly_itself(
            pattern in key_strategy().prop_filter("no wildcards", |p| !p.contains('*')),
            routing_key in key_strategy(),
        ) {
            prop_assert_eq!(topic_matches(&pattern, &routing_key), pattern == routing_key);
            prop_assert!(topic_matches(&pattern, &pattern.to_string()));
        }
    }
}
