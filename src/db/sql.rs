//! A small SQL builder for dynamic queries (filters, policy predicates, batches).
//!
//! sqlx's `QueryBuilder` writes `?` placeholders for the `Any` driver, which PostgreSQL
//! rejects; this one writes `$1, $2, …`, which both databases accept.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Arguments, Encode, FromRow, Type};

/// SQL text plus its bound arguments.
#[derive(Default)]
pub struct SqlBuilder {
    sql: String,
    args: AnyArguments,
    count: usize,
    error: Option<String>,
}

impl SqlBuilder {
    /// Starts with `sql`.
    pub fn new(sql: impl Into<String>) -> Self {
        Self { sql: sql.into(), ..Self::default() }
    }

    /// Appends SQL text (never user input).
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: for<'q> Encode<'q, Any> + Type<Any> + 'static,
    {
        self.count += 1;
        self.sql.push('$');
        self.sql.push_str(&self.count.to_string());
        if let Err(e) = self.args.add(value) {
            self.error.get_or_insert(e.to_string());
        }
        self
    }

    /// Appends `v1, v2, …` placeholders separated by commas, one per value.
    pub fn push_bind_list<T>(&mut self, values: impl IntoIterator<Item = T>) -> &mut Self
    where
        T: for<'q> Encode<'q, Any> + Type<Any> + 'static,
    {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push_bind(value);
        }
        self
    }

    /// The SQL text so far.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    fn check(&self) -> Result<(), sqlx::Error> {
        match &self.error {
            Some(e) => Err(sqlx::Error::Encode(e.clone().into())),
            None => Ok(()),
        }
    }

    /// A query returning rows of `O`.
    pub fn build_query_as<O>(self) -> Result<sqlx::query::QueryAs<'static, Any, O, AnyArguments>, sqlx::Error>
    where
        O: for<'r> FromRow<'r, AnyRow>,
    {
        self.check()?;
        Ok(sqlx::query_as_with(sqlx::AssertSqlSafe(self.sql), self.args))
    }

    /// A query returning one scalar column.
    pub fn build_query_scalar<O>(self) -> Result<sqlx::query::QueryScalar<'static, Any, O, AnyArguments>, sqlx::Error>
    where
        (O,): for<'r> FromRow<'r, AnyRow>,
    {
        self.check()?;
        Ok(sqlx::query_scalar_with(sqlx::AssertSqlSafe(self.sql), self.args))
    }

    /// A statement.
    pub fn build(self) -> Result<sqlx::query::Query<'static, Any, AnyArguments>, sqlx::Error> {
        self.check()?;
        Ok(sqlx::query_with(sqlx::AssertSqlSafe(self.sql), self.args))
    }
}

/// The `LIKE` pattern for "contains `text`" (trimmed, lower-cased, `%`, `_` and `\` escaped,
/// wrapped in `%…%`): compare with `LOWER(column) LIKE $n ESCAPE '\'`.
pub fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.trim().to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_placeholders() {
        let mut sql = SqlBuilder::new("SELECT 1 WHERE a = ");
        sql.push_bind(1_i64).push(" AND b IN (").push_bind_list(["x".to_owned(), "y".to_owned()]).push(")");
        assert_eq!(sql.sql(), "SELECT 1 WHERE a = $1 AND b IN ($2, $3)");
    }

    /// The three searches that had their own copies (exports, triage, candidates) keep their cases.
    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_Off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_pattern("plain"), "%plain%");
        assert_eq!(like_pattern(" 50%_Off\\ "), "%50\\%\\_off\\\\%");
    }
}
