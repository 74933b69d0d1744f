//! Bind placeholders for generated multi-row statements, written once as PostgreSQL's
//! `$n` and turned into SQLite's anonymous `?` where SQLite runs them.

/// `($2, $3, …), (…)`: placeholders for `rows` rows of `columns` values after `first - 1`
/// leading parameters.
pub(super) fn value_rows(first: usize, rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (0..columns).map(|c| format!("${}", first + r * columns + c)).collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn in_list(first: usize, n: usize) -> String {
    (0..n).map(|i| format!("${}", first + i)).collect::<Vec<_>>().join(", ")
}

/// For SQLite, `$n` placeholders become plain `?` (numbered in order of appearance; every
/// generated statement binds in that order). SQLite looks each `$n` up in a list while
/// preparing, which makes preparing a statement with thousands of them quadratic: a
/// 250-row upsert took 27 ms to prepare instead of well under one.
pub(super) fn positional(sqlite: bool, sql: String) -> String {
    if !sqlite {
        return sql;
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_gets_plain_placeholders() {
        assert_eq!(super::positional(true, "a = $1 AND b IN ($2, $13) AND c = '$x'".into()), "a = ? AND b IN (?, ?) AND c = '$x'");
        assert_eq!(super::positional(false, "a = $1".into()), "a = $1");
    }

    #[test]
    fn placeholders_number_rows_after_leading_parameters() {
        assert_eq!(super::value_rows(2, 2, 2), "($2, $3), ($4, $5)");
        assert_eq!(super::in_list(2, 3), "$2, $3, $4");
    }
}
