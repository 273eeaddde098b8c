//! `get_enrichment_table_record(table, conditions)`: the one call whose first argument is
//! resolved when the program compiles, to one of the pipeline's enrichment tables
//! (docs/enrichment.md), so that a misspelt table fails the load rather than every event.

use super::{Parser, Result};
use crate::remap::functions::enrichment::TABLE_RECORD;
use crate::remap::lexer::Token;
use crate::remap::tree::{Expr, Node, TableRecord};

impl Parser<'_> {
    /// Parses the arguments, from just after `(` through `)`: a string literal naming a
    /// table, then an expression for the conditions (an object at run time).
    pub(super) fn table_record(&mut self, offset: usize) -> Result<Node> {
        self.skip_newlines();
        let name_offset = self.here();
        let Some(Token::Str(name)) = self.peek().cloned() else {
            return Err(self.expected(&format!(
                "the table's name as a string literal (`{TABLE_RECORD}(\"table\", {{...}})`)"
            )));
        };
        self.pos += 1;
        let table = self.tables.get(&name).cloned().ok_or_else(|| {
            let ids = self.tables.ids();
            let known = if ids.is_empty() {
                "none is defined; add [enrichment_tables.ID]".to_string()
            } else {
                format!("expected one of: {}", ids.join(", "))
            };
            self.error_at(
                name_offset,
                format!("no enrichment table `{name}` ({known})"),
            )
        })?;
        self.skip_newlines();
        self.expect(
            &Token::Comma,
            &format!("`,` and the conditions: `{TABLE_RECORD}(\"{name}\", {{\"field\": value}})`"),
        )?;
        self.skip_newlines();
        let conditions = self.expr()?;
        self.skip_newlines();
        if self.eat(&Token::Comma) {
            self.skip_newlines();
        }
        self.expect(
            &Token::RParen,
            &format!("`)`: `{TABLE_RECORD}` takes 2 arguments"),
        )?;
        Ok(Node {
            expr: Expr::TableRecord(Box::new(TableRecord { table, conditions })),
            offset,
        })
    }
}
