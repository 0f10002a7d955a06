//! Content filters: a subscription's JSON predicate over the event envelope, such as
//! `{"data.amount": {"$gte": 100}, "data.region": {"$in": ["eu", "uk"]}}`.
//!
//! A filter is an object whose keys are paths (`data.…`, `event`, `version`, `id`) or the logical
//! operators `$and`, `$or` (arrays of filters) and `$not` (a filter); all keys of one object must
//! hold. A path's value is either a literal (shorthand for `$eq`) or an object of operators:
//! `$eq`, `$ne`, `$gt`, `$gte`, `$lt`, `$lte`, `$in`, `$nin`, `$exists` and `$not` (an operator
//! object). Path segments are separated by dots; a numeric segment indexes an array; any other
//! segment applied to an array looks into each element, and a condition holds when it holds for
//! any of the values reached (`{"data.items.sku": "A-1"}` matches when some item has that sku).
//!
//! [`ContentFilter::parse`] checks everything once (operators, operand types, nesting at most
//! [`MAX_DEPTH`], at most [`MAX_CONDITIONS`] conditions) and names the path of the first mistake;
//! [`ContentFilter::matches`] then never fails. Cost of one evaluation: each condition walks its
//! path through the document once, visiting every value at most once, so the work is bounded by
//! the number of conditions (≤ 100, `$in` lists counted by their length too) times the size of
//! the event (bounded by `max_payload_bytes`). No regular expressions.

use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::fmt;

/// Deepest nesting of objects and arrays in a filter document.
pub const MAX_DEPTH: usize = 32;
/// Most conditions (field comparisons, plus one per `$in`/`$nin` list element) in one filter.
pub const MAX_CONDITIONS: usize = 100;
/// Most segments in one path.
pub const MAX_PATH_SEGMENTS: usize = 32;
/// The envelope fields a path may start with.
pub const ROOTS: [&str; 4] = ["data", "event", "version", "id"];

/// Why a filter is refused: where (`filter.$and[1].data.amount.$gt`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for FilterError {}

/// A parsed, checked filter. Valid by construction; evaluating it cannot fail.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentFilter {
    root: Node,
}

/// What a filter is evaluated against: the envelope fields a path can name.
#[derive(Debug, Clone)]
pub struct FilterInput<'a> {
    pub id: &'a str,
    pub event: &'a str,
    pub version: &'a str,
    pub data: &'a Value,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Field { path: FieldPath, test: Test },
}

#[derive(Debug, Clone, PartialEq)]
struct FieldPath {
    root: Root,
    segments: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Root {
    Data,
    Event,
    Version,
    Id,
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    All(Vec<Test>),
    Not(Box<Test>),
    Eq(Value),
    Ne(Value),
    Compare(Ordering, bool, Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exists(bool),
}

impl ContentFilter {
    /// Parses a filter from its JSON text.
    pub fn parse_text(text: &str) -> Result<Self, FilterError> {
        let value: Value = serde_json::from_str(text).map_err(|e| FilterError {
            path: "filter".into(),
            message: format!("is not valid JSON ({e})"),
        })?;
        Self::parse(&value)
    }

    /// Checks a filter document and compiles it.
    pub fn parse(value: &Value) -> Result<Self, FilterError> {
        let mut parser = Parser { conditions: 0 };
        let root = parser.filter(value, "filter", 1)?;
        Ok(Self { root })
    }

    /// Whether the envelope passes the filter.
    pub fn matches(&self, input: &FilterInput<'_>) -> bool {
        self.root.eval(input)
    }
}

struct Parser {
    conditions: usize,
}

fn error(path: &str, message: impl Into<String>) -> FilterError {
    FilterError {
        path: path.to_owned(),
        message: message.into(),
    }
}

impl Parser {
    fn count(&mut self, path: &str, n: usize) -> Result<(), FilterError> {
        self.conditions += n;
        match self.conditions > MAX_CONDITIONS {
            true => Err(error(
                path,
                format!("the filter has more than {MAX_CONDITIONS} conditions"),
            )),
            false => Ok(()),
        }
    }

    fn depth(path: &str, depth: usize) -> Result<(), FilterError> {
        match depth > MAX_DEPTH {
            true => Err(error(
                path,
                format!("the filter is nested more than {MAX_DEPTH} levels deep"),
            )),
            false => Ok(()),
        }
    }

    /// A filter object: paths and logical operators, all of which must hold.
    fn filter(&mut self, value: &Value, path: &str, depth: usize) -> Result<Node, FilterError> {
        Self::depth(path, depth)?;
        let Value::Object(object) = value else {
            return Err(error(path, "must be an object of conditions"));
        };
        if object.is_empty() {
            return Err(error(path, "must hold at least one condition"));
        }
        let mut nodes = Vec::with_capacity(object.len());
        for (key, inner) in object {
            let here = format!("{path}.{key}");
            nodes.push(match key.as_str() {
                "$and" => Node::All(self.filter_list(inner, &here, depth + 1)?),
                "$or" => Node::Any(self.filter_list(inner, &here, depth + 1)?),
                "$not" => Node::Not(Box::new(self.filter(inner, &here, depth + 1)?)),
                other if other.starts_with('$') => {
                    return Err(error(
                        &here,
                        format!("unknown operator {other:?} (expected $and, $or, $not or a path)"),
                    ));
                }
                _ => Node::Field {
                    path: parse_path(key, &here)?,
                    test: self.test(inner, &here, depth + 1)?,
                },
            });
        }
        Ok(single_or(nodes, Node::All))
    }

    fn filter_list(
        &mut self,
        value: &Value,
        path: &str,
        depth: usize,
    ) -> Result<Vec<Node>, FilterError> {
        Self::depth(path, depth)?;
        let Value::Array(items) = value else {
            return Err(error(path, "must be an array of filters"));
        };
        if items.is_empty() {
            return Err(error(path, "must hold at least one filter"));
        }
        items
            .iter()
            .enumerate()
            .map(|(index, item)| self.filter(item, &format!("{path}[{index}]"), depth + 1))
            .collect()
    }

    /// A path's condition: an operator object, or a literal meaning `$eq`.
    fn test(&mut self, value: &Value, path: &str, depth: usize) -> Result<Test, FilterError> {
        Self::depth(path, depth)?;
        let operators = match value {
            Value::Object(object) if is_operator_object(object) => object,
            literal => {
                Self::depth(path, depth + value_depth(literal))?;
                self.count(path, 1)?;
                return Ok(Test::Eq(literal.clone()));
            }
        };
        let mut tests = Vec::with_capacity(operators.len());
        for (operator, operand) in operators {
            let here = format!("{path}.{operator}");
            tests.push(self.operator(operator, operand, &here, depth + 1)?);
        }
        Ok(single_or(tests, Test::All))
    }

    fn operator(
        &mut self,
        operator: &str,
        operand: &Value,
        path: &str,
        depth: usize,
    ) -> Result<Test, FilterError> {
        if operator == "$not" {
            return match operand {
                Value::Object(object) if is_operator_object(object) => {
                    Ok(Test::Not(Box::new(self.test(operand, path, depth)?)))
                }
                _ => Err(error(
                    path,
                    "must be an object of operators such as {\"$gt\": 1}",
                )),
            };
        }
        Self::depth(path, depth + value_depth(operand))?;
        let test = match operator {
            "$eq" => Test::Eq(operand.clone()),
            "$ne" => Test::Ne(operand.clone()),
            "$gt" => Test::Compare(Ordering::Greater, false, comparable(operand, path)?),
            "$gte" => Test::Compare(Ordering::Greater, true, comparable(operand, path)?),
            "$lt" => Test::Compare(Ordering::Less, false, comparable(operand, path)?),
            "$lte" => Test::Compare(Ordering::Less, true, comparable(operand, path)?),
            "$in" | "$nin" => {
                let Value::Array(items) = operand else {
                    return Err(error(path, "must be an array of values"));
                };
                if items.is_empty() {
                    return Err(error(path, "must hold at least one value"));
                }
                self.count(path, items.len())?;
                return Ok(match operator {
                    "$in" => Test::In(items.clone()),
                    _ => Test::Nin(items.clone()),
                });
            }
            "$exists" => match operand {
                Value::Bool(wanted) => Test::Exists(*wanted),
                _ => return Err(error(path, "must be true or false")),
            },
            other => {
                return Err(error(
                    path,
                    format!(
                        "unknown operator {other:?} (expected $eq, $ne, $gt, $gte, $lt, $lte, \
                         $in, $nin, $exists or $not)"
                    ),
                ));
            }
        };
        self.count(path, 1)?;
        Ok(test)
    }
}

/// An object whose keys all start with `$` is a set of operators; one without any is a literal.
/// A mix is refused as an unknown operator by the caller's path check, so treat it as operators.
fn is_operator_object(object: &Map<String, Value>) -> bool {
    !object.is_empty() && object.keys().any(|key| key.starts_with('$'))
}

fn single_or<T>(mut items: Vec<T>, many: fn(Vec<T>) -> T) -> T {
    match items.len() {
        1 => items.pop().unwrap_or_else(|| many(Vec::new())),
        _ => many(items),
    }
}

/// How deeply a literal nests (a scalar is 0).
fn value_depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn comparable(operand: &Value, path: &str) -> Result<Value, FilterError> {
    match operand {
        Value::Number(_) | Value::String(_) => Ok(operand.clone()),
        other => Err(error(
            path,
            format!("must be a number or a string (found {})", kind(other)),
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_path(raw: &str, path: &str) -> Result<FieldPath, FilterError> {
    let mut parts = raw.split('.');
    let root = match parts.next() {
        Some("data") => Root::Data,
        Some("event") => Root::Event,
        Some("version") => Root::Version,
        Some("id") => Root::Id,
        _ => {
            return Err(error(
                path,
                format!("unknown field {raw:?} (a path starts with data, event, version or id)"),
            ));
        }
    };
    let segments: Vec<String> = parts.map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        return Err(error(path, "a path has no empty segments"));
    }
    if root != Root::Data && !segments.is_empty() {
        return Err(error(
            path,
            format!("{raw:?}: only data has fields below it"),
        ));
    }
    if segments.len() > MAX_PATH_SEGMENTS {
        return Err(error(
            path,
            format!("a path has at most {MAX_PATH_SEGMENTS} segments"),
        ));
    }
    Ok(FieldPath { root, segments })
}

impl Node {
    fn eval(&self, input: &FilterInput<'_>) -> bool {
        match self {
            Node::All(nodes) => nodes.iter().all(|node| node.eval(input)),
            Node::Any(nodes) => nodes.iter().any(|node| node.eval(input)),
            Node::Not(node) => !node.eval(input),
            Node::Field { path, test } => {
                let mut reached = Vec::new();
                path.resolve(input, &mut reached);
                test.eval(&reached)
            }
        }
    }
}

/// A value a path reached: borrowed from `data`, or an envelope string.
#[derive(Debug, Clone, Copy)]
enum Reached<'a> {
    Json(&'a Value),
    Text(&'a str),
}

impl FieldPath {
    fn resolve<'a>(&self, input: &FilterInput<'a>, out: &mut Vec<Reached<'a>>) {
        match self.root {
            Root::Event => out.push(Reached::Text(input.event)),
            Root::Version => out.push(Reached::Text(input.version)),
            Root::Id => out.push(Reached::Text(input.id)),
            Root::Data => walk(input.data, &self.segments, out),
        }
    }
}

/// Follows `segments` from `value`, fanning out over arrays. Each value of the document is visited
/// at most once per call (a JSON document is a tree).
fn walk<'a>(value: &'a Value, segments: &[String], out: &mut Vec<Reached<'a>>) {
    let Some((first, rest)) = segments.split_first() else {
        out.push(Reached::Json(value));
        return;
    };
    match value {
        Value::Object(map) => {
            if let Some(next) = map.get(first) {
                walk(next, rest, out);
            }
        }
        Value::Array(items) => match first.parse::<usize>() {
            Ok(index) => {
                if let Some(next) = items.get(index) {
                    walk(next, rest, out);
                }
            }
            Err(_) => items.iter().for_each(|item| walk(item, segments, out)),
        },
        _ => {}
    }
}

impl Test {
    fn eval(&self, reached: &[Reached<'_>]) -> bool {
        match self {
            Test::All(tests) => tests.iter().all(|test| test.eval(reached)),
            Test::Not(test) => !test.eval(reached),
            Test::Exists(wanted) => reached.is_empty() != *wanted,
            Test::Eq(wanted) => any_value(reached, |v| equal(v, wanted)),
            Test::Ne(wanted) => !any_value(reached, |v| equal(v, wanted)),
            Test::In(list) => any_value(reached, |v| list.iter().any(|w| equal(v, w))),
            Test::Nin(list) => !any_value(reached, |v| list.iter().any(|w| equal(v, w))),
            Test::Compare(direction, or_equal, bound) => {
                any_value(reached, |v| match compare(v, bound) {
                    Some(Ordering::Equal) => *or_equal,
                    Some(order) => order == *direction,
                    None => false,
                })
            }
        }
    }
}

/// A borrowed view of a reached value for comparisons.
enum Scalar<'a> {
    Json(&'a Value),
    Text(&'a str),
}

/// True when `check` holds for a reached value or, for a reached array, for the array itself or
/// any of its elements.
fn any_value(reached: &[Reached<'_>], check: impl Fn(&Scalar<'_>) -> bool) -> bool {
    reached.iter().any(|value| match value {
        Reached::Text(text) => check(&Scalar::Text(text)),
        Reached::Json(json) => {
            check(&Scalar::Json(json))
                || match json {
                    Value::Array(items) => items.iter().any(|item| check(&Scalar::Json(item))),
                    _ => false,
                }
        }
    })
}

fn equal(value: &Scalar<'_>, wanted: &Value) -> bool {
    match (value, wanted) {
        (Scalar::Text(text), Value::String(w)) => text == w,
        (Scalar::Text(_), _) => false,
        (Scalar::Json(Value::Number(a)), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Scalar::Json(json), _) => *json == wanted,
    }
}

fn compare(value: &Scalar<'_>, bound: &Value) -> Option<Ordering> {
    match (value, bound) {
        (Scalar::Json(Value::Number(a)), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Scalar::Json(Value::String(a)), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
        (Scalar::Text(a), Value::String(b)) => Some((*a).cmp(b.as_str())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order() -> Value {
        json!({
            "amount": 150,
            "price": 9.5,
            "region": "eu",
            "customer": {"tier": "gold", "address": {"country": "FR"}},
            "tags": ["new", "priority"],
            "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 5}],
            "note": null,
            "paid": true
        })
    }

    fn check(filter: Value, expected: bool) {
        let data = order();
        let input = FilterInput {
            id: "evt_1",
            event: "order.created",
            version: "2.0",
            data: &data,
        };
        let parsed =
            ContentFilter::parse(&filter).unwrap_or_else(|e| panic!("{filter} should parse: {e}"));
        assert_eq!(parsed.matches(&input), expected, "filter {filter}");
    }

    #[test]
    fn each_operator_matches_and_misses() {
        let cases = [
            // $eq, explicit and implicit, numbers across int/float
            (json!({"data.region": "eu"}), true),
            (json!({"data.region": "us"}), false),
            (json!({"data.amount": {"$eq": 150}}), true),
            (json!({"data.amount": {"$eq": 150.0}}), true),
            (json!({"data.amount": {"$eq": 151}}), false),
            (json!({"data.note": null}), true),
            (json!({"data.paid": true}), true),
            (
                json!({"data.customer": {"tier": "gold", "address": {"country": "FR"}}}),
                true,
            ),
            // $ne
            (json!({"data.region": {"$ne": "us"}}), true),
            (json!({"data.region": {"$ne": "eu"}}), false),
            (json!({"data.missing": {"$ne": 1}}), true),
            // $gt $gte $lt $lte on numbers and strings
            (json!({"data.amount": {"$gt": 100}}), true),
            (json!({"data.amount": {"$gt": 150}}), false),
            (json!({"data.amount": {"$gte": 150}}), true),
            (json!({"data.amount": {"$gte": 151}}), false),
            (json!({"data.amount": {"$lt": 151}}), true),
            (json!({"data.amount": {"$lt": 150}}), false),
            (json!({"data.amount": {"$lte": 150}}), true),
            (json!({"data.amount": {"$lte": 149.9}}), false),
            (json!({"data.price": {"$gt": 9.25, "$lt": 10}}), true),
            (json!({"data.region": {"$gt": "ab"}}), true),
            (json!({"data.region": {"$lt": "ab"}}), false),
            (json!({"version": {"$gte": "2.0"}}), true),
            // a comparison with a value of another type is false, not an error
            (json!({"data.region": {"$gt": 1}}), false),
            (json!({"data.customer": {"$gt": 1}}), false),
            // $in $nin
            (json!({"data.region": {"$in": ["eu", "uk"]}}), true),
            (json!({"data.region": {"$in": ["us", "uk"]}}), false),
            (json!({"data.region": {"$nin": ["us", "uk"]}}), true),
            (json!({"data.region": {"$nin": ["eu"]}}), false),
            (
                json!({"event": {"$in": ["order.created", "order.paid"]}}),
                true,
            ),
            // $exists
            (json!({"data.note": {"$exists": true}}), true),
            (json!({"data.missing": {"$exists": true}}), false),
            (json!({"data.missing": {"$exists": false}}), true),
            (json!({"data.region": {"$exists": false}}), false),
            // $and $or $not
            (
                json!({"$and": [{"data.region": "eu"}, {"data.amount": {"$gte": 100}}]}),
                true,
            ),
            (
                json!({"$and": [{"data.region": "eu"}, {"data.amount": {"$gte": 200}}]}),
                false,
            ),
            (
                json!({"$or": [{"data.region": "us"}, {"data.amount": {"$gte": 100}}]}),
                true,
            ),
            (
                json!({"$or": [{"data.region": "us"}, {"data.amount": {"$gte": 200}}]}),
                false,
            ),
            (json!({"$not": {"data.region": "us"}}), true),
            (json!({"$not": {"data.region": "eu"}}), false),
            (json!({"data.amount": {"$not": {"$gt": 200}}}), true),
            (json!({"data.amount": {"$not": {"$gt": 100}}}), false),
            // several keys in one object all hold
            (json!({"data.region": "eu", "event": "order.created"}), true),
            (json!({"data.region": "eu", "event": "order.paid"}), false),
            // nested paths and arrays
            (json!({"data.customer.address.country": "FR"}), true),
            (json!({"data.customer.address.country": "DE"}), false),
            (json!({"data.tags": "priority"}), true),
            (json!({"data.tags": "low"}), false),
            (json!({"data.tags": ["new", "priority"]}), true),
            (json!({"data.tags.0": "new"}), true),
            (json!({"data.tags.1": "new"}), false),
            (json!({"data.items.sku": "B-2"}), true),
            (json!({"data.items.sku": "C-3"}), false),
            (json!({"data.items.qty": {"$gt": 4}}), true),
            (json!({"data.items.qty": {"$gt": 5}}), false),
            (json!({"data.items.1.qty": 5}), true),
            (json!({"data.items.9.qty": {"$exists": true}}), false),
            // envelope fields
            (json!({"event": "order.created"}), true),
            (json!({"id": "evt_1"}), true),
            (json!({"version": "1.0"}), false),
        ];
        for (filter, expected) in cases {
            check(filter, expected);
        }
    }

    fn refused(filter: Value) -> FilterError {
        ContentFilter::parse(&filter).expect_err(&format!("{filter} should be refused"))
    }

    #[test]
    fn mistakes_are_refused_with_their_path() {
        let cases = [
            (json!([1]), "filter"),
            (json!({}), "filter"),
            (
                json!({"data.amount": {"$gtx": 1}}),
                "filter.data.amount.$gtx",
            ),
            (json!({"$nor": []}), "filter.$nor"),
            (
                json!({"data.amount": {"$gt": {"a": 1}}}),
                "filter.data.amount.$gt",
            ),
            (
                json!({"data.amount": {"$gt": [1]}}),
                "filter.data.amount.$gt",
            ),
            (
                json!({"data.amount": {"$lte": true}}),
                "filter.data.amount.$lte",
            ),
            (json!({"data.amount": {"$in": 1}}), "filter.data.amount.$in"),
            (
                json!({"data.amount": {"$nin": []}}),
                "filter.data.amount.$nin",
            ),
            (
                json!({"data.amount": {"$exists": 1}}),
                "filter.data.amount.$exists",
            ),
            (
                json!({"data.amount": {"$not": 3}}),
                "filter.data.amount.$not",
            ),
            (json!({"$and": {}}), "filter.$and"),
            (json!({"$or": []}), "filter.$or"),
            (json!({"$and": [{"data.a": 1}, 2]}), "filter.$and[1]"),
            (
                json!({"$or": [{"data.a": {"$lt": null}}]}),
                "filter.$or[0].data.a.$lt",
            ),
            (json!({"$not": []}), "filter.$not"),
            (json!({"payload.amount": 1}), "filter.payload.amount"),
            (json!({"data..amount": 1}), "filter.data..amount"),
            (json!({"event.name": 1}), "filter.event.name"),
        ];
        for (filter, path) in cases {
            assert_eq!(refused(filter.clone()).path, path, "filter {filter}");
        }
        let text = ContentFilter::parse_text("{").unwrap_err();
        assert_eq!(text.path, "filter");
    }

    fn nested_not(levels: usize) -> Value {
        let mut filter = json!({"data.a": 1});
        for _ in 1..levels {
            filter = json!({ "$not": filter });
        }
        filter
    }

    #[test]
    fn depth_is_bounded_at_32() {
        // Each `$not` is one level; the innermost object is level 1 and its literal's test is one
        // more, so 31 objects fit and 32 do not.
        assert!(ContentFilter::parse(&nested_not(MAX_DEPTH - 1)).is_ok());
        let error = refused(nested_not(MAX_DEPTH + 1));
        assert!(error.message.contains("32 levels"), "{error}");
        let deep_literal = (0..40).fold(json!(1), |inner, _| json!([inner]));
        let error = refused(json!({ "data.a": deep_literal }));
        assert_eq!(error.path, "filter.data.a");
        assert!(error.message.contains("32 levels"), "{error}");
    }

    #[test]
    fn conditions_are_bounded_at_100() {
        let many = |n: usize| {
            let list: Vec<Value> = (0..n).map(|i| json!({ format!("data.f{i}"): i })).collect();
            json!({ "$and": list })
        };
        assert!(ContentFilter::parse(&many(MAX_CONDITIONS)).is_ok());
        let error = refused(many(MAX_CONDITIONS + 1));
        assert_eq!(error.path, "filter.$and[100].data.f100");
        assert!(error.message.contains("100 conditions"), "{error}");
        let list: Vec<Value> = (0..=MAX_CONDITIONS).map(|i| json!(i)).collect();
        let error = refused(json!({"data.a": {"$in": list}}));
        assert_eq!(error.path, "filter.data.a.$in");
    }

    #[test]
    fn paths_are_bounded() {
        let long = format!("data{}", ".a".repeat(MAX_PATH_SEGMENTS + 1));
        assert!(refused(json!({ long: 1 })).message.contains("segments"));
    }
}
