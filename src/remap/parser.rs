//! A recursive-descent parser from tokens to the compiled tree, resolving names as it goes.
//!
//! Grammar (statements end at a new line or `;`; a new line inside brackets or after an
//! operator continues the expression):
//!
//! ```text
//! program    = statement*
//! statement  = "if" expr block ( "else" ( "if" ... | block ) )?
//!            | "abort"
//!            | target ( "," target )? "=" expr
//!            | expr
//! target     = PATH | NAME                       (`_` throws the value away)
//! block      = "{" statement* "}"
//! expr       = or ( "??" or )*
//! or         = and ( "||" and )*
//! and        = comparison ( "&&" comparison )*
//! comparison = sum ( CMP sum )?
//! sum        = product ( ( "+" | "-" ) product )*
//! product    = unary ( ( "*" | "/" | "%" ) unary )*
//! unary      = ( "!" | "-" ) unary | primary
//! primary    = literal | PATH | NAME | NAME PATH | NAME "(" args ")" | "(" expr ")"
//!            | "[" expr,* "]" | "{" ( (STRING | NAME) ":" expr ),* "}"
//! ```
//!
//! After parsing, each statement is checked for a fallible call that nothing handles: a
//! call is handled by being (inside) the left side of `??` or the value of an assignment
//! with an error target.

use super::functions::enrichment::TABLE_RECORD;
use super::functions::Function;
use super::lexer::{Spanned, Token};
use super::tree::{Expr, Node, Statement, Target};
use super::{CompileError, MAX_DEPTH};
use crate::condition::FieldPath;
use crate::enrichment::Tables;

mod enrichment;
mod expression;

/// Whether `name` is a function (of [`Function`] or one the parser handles itself).
pub(super) fn is_function(name: &str) -> bool {
    Function::by_name(name).is_some() || matches!(name, "del" | "exists" | TABLE_RECORD)
}

pub(super) struct Parsed {
    pub(super) statements: Box<[Statement]>,
    pub(super) paths: Box<[FieldPath]>,
    pub(super) variables: usize,
}

pub(super) struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Spanned>,
    pos: usize,
    depth: usize,
    paths: Vec<FieldPath>,
    variables: Vec<String>,
    /// The pipeline's enrichment tables, for `get_enrichment_table_record`.
    tables: &'a Tables,
}

type Result<T> = std::result::Result<T, CompileError>;

impl<'a> Parser<'a> {
    pub(super) fn new(src: &'a str, tokens: Vec<Spanned>, tables: &'a Tables) -> Self {
        Self {
            src,
            tokens,
            pos: 0,
            depth: 0,
            paths: Vec::new(),
            variables: Vec::new(),
            tables,
        }
    }

    pub(super) fn parse(mut self) -> Result<Parsed> {
        let mut statements = Vec::new();
        loop {
            self.skip_separators();
            if self.pos >= self.tokens.len() {
                break;
            }
            statements.push(self.statement()?);
            self.end_of_statement()?;
        }
        if statements.is_empty() {
            return Err(self.error_at(0, "the program is empty".into()));
        }
        Ok(Parsed {
            statements: statements.into_boxed_slice(),
            paths: self.paths.into_boxed_slice(),
            variables: self.variables.len(),
        })
    }

    // === helpers ===

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|t| &t.token)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Token> {
        self.tokens.get(self.pos + ahead).map(|t| &t.token)
    }

    fn eat(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Offset of the next token, or the end of the source.
    fn here(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map_or(self.src.len(), |t| t.offset)
    }

    fn error_at(&self, offset: usize, message: String) -> CompileError {
        CompileError::at(self.src, offset, message)
    }

    fn text(&self, tok: &Spanned) -> &'a str {
        &self.src[tok.offset..tok.offset + tok.len]
    }

    /// "expected X" at the next token, naming what was found there.
    fn expected(&self, what: &str) -> CompileError {
        let message = match self.tokens.get(self.pos) {
            Some(Spanned {
                token: Token::Newline,
                ..
            }) => format!("expected {what}, found the end of the line"),
            Some(tok) => format!("expected {what}, found `{}`", self.text(tok)),
            None => format!("expected {what}, found the end of the program"),
        };
        self.error_at(self.here(), message)
    }

    fn expect(&mut self, token: &Token, what: &str) -> Result<()> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    fn skip_newlines(&mut self) {
        while self.peek() == Some(&Token::Newline) {
            self.pos += 1;
        }
    }

    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(Token::Newline | Token::Semicolon)) {
            self.pos += 1;
        }
    }

    fn end_of_statement(&mut self) -> Result<()> {
        match self.peek() {
            None | Some(Token::Newline | Token::Semicolon | Token::RBrace) => Ok(()),
            _ => Err(self.expected("a new line or `;` after the statement")),
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(
                self.here(),
                format!("the program nests too deeply (more than {MAX_DEPTH} levels)"),
            ));
        }
        Ok(())
    }

    /// Each further operand of a chain (`a + b + c`) nests the tree one level deeper,
    /// and evaluating it recurses that deep, so chains count against the depth limit too.
    fn enter_operand(&mut self, operands: &mut usize) -> Result<()> {
        self.enter()?;
        *operands += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn path_index(&mut self, path: FieldPath) -> u32 {
        let index = match self.paths.iter().position(|p| *p == path) {
            Some(i) => i,
            None => {
                self.paths.push(path);
                self.paths.len() - 1
            }
        };
        // The program size limit keeps this far below u32::MAX.
        u32::try_from(index).unwrap_or(u32::MAX)
    }

    fn variable(&self, name: &str) -> Option<u32> {
        self.variables
            .iter()
            .position(|v| v == name)
            .and_then(|i| u32::try_from(i).ok())
    }

    fn define(&mut self, name: &str) -> u32 {
        if let Some(slot) = self.variable(name) {
            return slot;
        }
        self.variables.push(name.to_string());
        u32::try_from(self.variables.len() - 1).unwrap_or(u32::MAX)
    }

    // === statements ===

    fn statement(&mut self) -> Result<Statement> {
        match self.peek() {
            Some(Token::If) => self.if_statement(),
            Some(Token::Abort) => {
                self.pos += 1;
                Ok(Statement::Abort)
            }
            Some(Token::Path(_) | Token::Name(_))
                if matches!(self.peek_at(1), Some(Token::Assign | Token::Comma)) =>
            {
                self.assignment()
            }
            _ => {
                let node = self.expr()?;
                self.check_handled(&node)?;
                Ok(Statement::Expression(node))
            }
        }
    }

    /// An assignment target, without defining a variable yet (its value is parsed first,
    /// so `x = x + 1` with no earlier `x` is an error).
    fn target(&mut self) -> Result<PendingTarget> {
        let Some(tok) = self.tokens.get(self.pos).cloned() else {
            return Err(self.expected("a field or a variable to assign to"));
        };
        let target = match tok.token {
            Token::Path(path) => PendingTarget::Field(self.path_index(path)),
            Token::Name(name) if name == "_" => PendingTarget::Discard,
            Token::Name(name) if is_function(&name) => {
                return Err(self.error_at(
                    tok.offset,
                    format!("`{name}` is a function and cannot be assigned to"),
                ))
            }
            Token::Name(name) => PendingTarget::Variable(name),
            _ => return Err(self.expected("a field or a variable to assign to")),
        };
        self.pos += 1;
        Ok(target)
    }

    fn assignment(&mut self) -> Result<Statement> {
        let target = self.target()?;
        let error = if self.eat(&Token::Comma) {
            Some(self.target()?)
        } else {
            None
        };
        self.expect(&Token::Assign, "`=`")?;
        self.skip_newlines();
        let value = self.expr()?;
        if error.is_none() {
            self.check_handled(&value)?;
        }
        Ok(Statement::Assign {
            target: self.resolve_target(target),
            error: error.map(|e| self.resolve_target(e)),
            value,
        })
    }

    fn resolve_target(&mut self, target: PendingTarget) -> Target {
        match target {
            PendingTarget::Field(index) => Target::Field(index),
            PendingTarget::Variable(name) => Target::Variable(self.define(&name)),
            PendingTarget::Discard => Target::Discard,
        }
    }

    fn if_statement(&mut self) -> Result<Statement> {
        let mut branches = Vec::new();
        let mut otherwise = Vec::new().into_boxed_slice();
        loop {
            // At `if`.
            self.pos += 1;
            let condition = self.expr()?;
            self.check_handled(&condition)?;
            let body = self.block()?;
            branches.push((condition, body));
            // `else` may follow on the next line.
            let after_block = self.pos;
            self.skip_newlines();
            if !self.eat(&Token::Else) {
                self.pos = after_block;
                break;
            }
            if self.peek() == Some(&Token::If) {
                continue;
            }
            otherwise = self.block()?;
            break;
        }
        Ok(Statement::If {
            branches: branches.into_boxed_slice(),
            otherwise,
        })
    }

    fn block(&mut self) -> Result<Box<[Statement]>> {
        self.expect(&Token::LBrace, "`{` to open a block")?;
        self.enter()?;
        let mut statements = Vec::new();
        loop {
            self.skip_separators();
            if self.eat(&Token::RBrace) {
                break;
            }
            if self.peek().is_none() {
                return Err(self.expected("`}` to close the block"));
            }
            statements.push(self.statement()?);
            self.end_of_statement()?;
        }
        self.leave();
        Ok(statements.into_boxed_slice())
    }

    /// Fails on a call to a fallible function in `node` that nothing handles.
    fn check_handled(&self, node: &Node) -> Result<()> {
        match first_unhandled(node) {
            Some((offset, name)) => Err(self.error_at(
                offset,
                format!(
                    "unhandled error: `{name}` can fail; handle it with \
                     `x, err = {name}(...)` or `{name}(...) ?? default`"
                ),
            )),
            None => Ok(()),
        }
    }
}

enum PendingTarget {
    Field(u32),
    Variable(String),
    Discard,
}

/// The first call to a fallible function in `node` that no `??` handles.
fn first_unhandled(node: &Node) -> Option<(usize, &'static str)> {
    match &node.expr {
        Expr::Literal(_)
        | Expr::Field(_)
        | Expr::Variable(_)
        | Expr::VariablePath(..)
        | Expr::Delete(_)
        | Expr::Exists(_) => None,
        Expr::Array(items) => items.iter().find_map(first_unhandled),
        Expr::Object(entries) => entries.iter().find_map(|(_, n)| first_unhandled(n)),
        Expr::Not(inner) | Expr::Negate(inner) => first_unhandled(inner),
        Expr::Arithmetic(_, l, r) | Expr::And(l, r) | Expr::Or(l, r) => {
            first_unhandled(l).or_else(|| first_unhandled(r))
        }
        Expr::Compare { left, right, .. } => {
            first_unhandled(left).or_else(|| first_unhandled(right))
        }
        Expr::Coalesce(_, right) => first_unhandled(right),
        // Always fallible (no record may match), so what its conditions do is handled too.
        Expr::TableRecord(_) => Some((node.offset, TABLE_RECORD)),
        Expr::Call(call) => {
            if call.function.is_fallible() {
                Some((node.offset, call.function.name()))
            } else {
                call.args.iter().find_map(first_unhandled)
            }
        }
    }
}
