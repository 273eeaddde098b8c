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

use compact_str::CompactString;
use regex::bytes::Regex;

use super::functions::{Function, MAX_ARGS};
use super::lexer::{Spanned, Token};
use super::tree::{ArithmeticOp, Call, Expr, Node, Statement, Target};
use super::{CompileError, MAX_DEPTH};
use crate::condition::{regex_error_text, FieldPath};
use crate::event::{fields, Value};

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
}

type Result<T> = std::result::Result<T, CompileError>;

impl<'a> Parser<'a> {
    pub(super) fn new(src: &'a str, tokens: Vec<Spanned>) -> Self {
        Self {
            src,
            tokens,
            pos: 0,
            depth: 0,
            paths: Vec::new(),
            variables: Vec::new(),
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
            Token::Name(name) if Function::by_name(&name).is_some() => {
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

    // === expressions ===

    pub(super) fn expr(&mut self) -> Result<Node> {
        self.enter()?;
        let mut left = self.or()?;
        let mut operands = 0;
        while self.peek() == Some(&Token::Coalesce) {
            let offset = self.here();
            self.pos += 1;
            self.enter_operand(&mut operands)?;
            self.skip_newlines();
            let right = self.or()?;
            left = binary(offset, left, right, Expr::Coalesce);
        }
        self.depth -= operands;
        self.leave();
        Ok(left)
    }

    fn or(&mut self) -> Result<Node> {
        let mut left = self.and()?;
        let mut operands = 0;
        while self.peek() == Some(&Token::Or) {
            let offset = self.here();
            self.pos += 1;
            self.enter_operand(&mut operands)?;
            self.skip_newlines();
            let right = self.and()?;
            left = binary(offset, left, right, Expr::Or);
        }
        self.depth -= operands;
        Ok(left)
    }

    fn and(&mut self) -> Result<Node> {
        let mut left = self.comparison()?;
        let mut operands = 0;
        while self.peek() == Some(&Token::And) {
            let offset = self.here();
            self.pos += 1;
            self.enter_operand(&mut operands)?;
            self.skip_newlines();
            let right = self.comparison()?;
            left = binary(offset, left, right, Expr::And);
        }
        self.depth -= operands;
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Node> {
        let left = self.sum()?;
        let Some(Token::Cmp(op)) = self.peek().cloned() else {
            return Ok(left);
        };
        let offset = self.here();
        self.pos += 1;
        self.skip_newlines();
        let right = self.sum()?;
        if let Some(Token::Cmp(next)) = self.peek() {
            return Err(self.error_at(
                self.here(),
                format!(
                    "comparisons cannot be chained: put parentheses around one side of `{}`",
                    next.symbol()
                ),
            ));
        }
        let severity = self.is_level(&left) || self.is_level(&right);
        Ok(Node {
            expr: Expr::Compare {
                op,
                severity,
                left: Box::new(left),
                right: Box::new(right),
            },
            offset,
        })
    }

    fn is_level(&self, node: &Node) -> bool {
        match node.expr {
            Expr::Field(index) => self
                .paths
                .get(index as usize)
                .is_some_and(|p| p.segments().len() == 1 && p.segments()[0] == fields::LEVEL),
            _ => false,
        }
    }

    fn sum(&mut self) -> Result<Node> {
        let mut left = self.product()?;
        let mut operands = 0;
        loop {
            let op = match self.peek() {
                Some(Token::Plus) => ArithmeticOp::Add,
                Some(Token::Minus) => ArithmeticOp::Subtract,
                _ => {
                    self.depth -= operands;
                    return Ok(left);
                }
            };
            let offset = self.here();
            self.pos += 1;
            self.enter_operand(&mut operands)?;
            self.skip_newlines();
            let right = self.product()?;
            left = binary(offset, left, right, |l, r| Expr::Arithmetic(op, l, r));
        }
    }

    fn product(&mut self) -> Result<Node> {
        let mut left = self.unary()?;
        let mut operands = 0;
        loop {
            let op = match self.peek() {
                Some(Token::Star) => ArithmeticOp::Multiply,
                Some(Token::Slash) => ArithmeticOp::Divide,
                Some(Token::Percent) => ArithmeticOp::Remainder,
                _ => {
                    self.depth -= operands;
                    return Ok(left);
                }
            };
            let offset = self.here();
            self.pos += 1;
            self.enter_operand(&mut operands)?;
            self.skip_newlines();
            let right = self.unary()?;
            left = binary(offset, left, right, |l, r| Expr::Arithmetic(op, l, r));
        }
    }

    fn unary(&mut self) -> Result<Node> {
        let offset = self.here();
        match self.peek() {
            Some(Token::Not) => {
                self.pos += 1;
                self.enter()?;
                let inner = self.unary()?;
                self.leave();
                Ok(Node {
                    expr: Expr::Not(Box::new(inner)),
                    offset,
                })
            }
            Some(Token::Minus) => {
                self.pos += 1;
                self.enter()?;
                let inner = self.unary()?;
                self.leave();
                let expr = match inner.expr {
                    Expr::Literal(Value::Integer(i)) if i != i64::MIN => {
                        Expr::Literal(Value::Integer(-i))
                    }
                    Expr::Literal(Value::Float(f)) => Expr::Literal(Value::Float(-f)),
                    _ => Expr::Negate(Box::new(inner)),
                };
                Ok(Node { expr, offset })
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Node> {
        let offset = self.here();
        let Some(tok) = self.tokens.get(self.pos).cloned() else {
            return Err(self.expected("a value"));
        };
        let literal = |v: Value| Node {
            expr: Expr::Literal(v),
            offset,
        };
        self.pos += 1;
        match tok.token {
            Token::Int(i) => Ok(literal(Value::Integer(i))),
            Token::Float(f) => Ok(literal(Value::Float(f))),
            Token::Str(s) => Ok(literal(Value::from(s))),
            Token::True => Ok(literal(Value::Bool(true))),
            Token::False => Ok(literal(Value::Bool(false))),
            Token::Null => Ok(literal(Value::Null)),
            Token::Path(path) => Ok(Node {
                expr: Expr::Field(self.path_index(path)),
                offset,
            }),
            Token::Name(name) => self.name(name, tok.offset + tok.len, offset),
            Token::LParen => {
                self.skip_newlines();
                let inner = self.expr()?;
                self.skip_newlines();
                self.expect(&Token::RParen, "`)`")?;
                Ok(inner)
            }
            Token::LBracket => self.array(offset),
            Token::LBrace => self.object(offset),
            Token::Regex(_) => Err(self.error_at(
                offset,
                "a regex is only allowed as the pattern of `replace`, `split` or `parse_regex`"
                    .into(),
            )),
            Token::Assign => Err(self.error_at(
                offset,
                "unexpected `=` (compare with `==`; assign only at the start of a statement)"
                    .into(),
            )),
            _ => {
                self.pos -= 1;
                Err(self.expected("a value"))
            }
        }
    }

    fn name(&mut self, name: String, end: usize, offset: usize) -> Result<Node> {
        if self.peek() == Some(&Token::LParen) {
            return self.call(name, offset);
        }
        let Some(slot) = self.variable(&name) else {
            let hint = if Function::by_name(&name).is_some() || name == "del" || name == "exists" {
                format!(" (`{name}` is a function: call it as `{name}(...)`)")
            } else {
                format!(" (a field is written `.{name}`)")
            };
            return Err(self.error_at(offset, format!("undefined variable `{name}`{hint}")));
        };
        // `parsed.status`: a path glued to the variable reads inside its value.
        if let Some(Spanned {
            token: Token::Path(path),
            offset: path_offset,
            ..
        }) = self.tokens.get(self.pos)
        {
            if *path_offset == end {
                let path = path.clone();
                self.pos += 1;
                return Ok(Node {
                    expr: Expr::VariablePath(slot, path),
                    offset,
                });
            }
        }
        Ok(Node {
            expr: Expr::Variable(slot),
            offset,
        })
    }

    fn array(&mut self, offset: usize) -> Result<Node> {
        self.enter()?;
        let mut items = Vec::new();
        loop {
            self.skip_newlines();
            if self.eat(&Token::RBracket) {
                break;
            }
            items.push(self.expr()?);
            self.skip_newlines();
            if self.eat(&Token::Comma) {
                continue;
            }
            self.expect(&Token::RBracket, "`,` or `]`")?;
            break;
        }
        self.leave();
        Ok(Node {
            expr: Expr::Array(items.into_boxed_slice()),
            offset,
        })
    }

    fn object(&mut self, offset: usize) -> Result<Node> {
        self.enter()?;
        let mut entries: Vec<(CompactString, Node)> = Vec::new();
        loop {
            self.skip_newlines();
            if self.eat(&Token::RBrace) {
                break;
            }
            let key = match self.peek() {
                Some(Token::Str(s)) => CompactString::from(s.as_str()),
                Some(Token::Name(n)) => CompactString::from(n.as_str()),
                _ => return Err(self.expected("a key (`\"name\":`) or `}`")),
            };
            self.pos += 1;
            self.expect(&Token::Colon, "`:` after the key")?;
            self.skip_newlines();
            let value = self.expr()?;
            entries.retain(|(k, _)| *k != key);
            entries.push((key, value));
            self.skip_newlines();
            if self.eat(&Token::Comma) {
                continue;
            }
            self.expect(&Token::RBrace, "`,` or `}`")?;
            break;
        }
        self.leave();
        Ok(Node {
            expr: Expr::Object(entries.into_boxed_slice()),
            offset,
        })
    }

    fn call(&mut self, name: String, offset: usize) -> Result<Node> {
        // At `(`.
        self.pos += 1;
        self.enter()?;
        if name == "del" || name == "exists" {
            self.skip_newlines();
            let Some(Token::Path(path)) = self.peek().cloned() else {
                return Err(
                    self.expected(&format!("a field (`.name`) as the argument of `{name}`"))
                );
            };
            self.pos += 1;
            self.skip_newlines();
            self.expect(&Token::RParen, &format!("`)`: `{name}` takes one field"))?;
            self.leave();
            let index = self.path_index(path);
            let expr = if name == "del" {
                Expr::Delete(index)
            } else {
                Expr::Exists(index)
            };
            return Ok(Node { expr, offset });
        }
        let Some(function) = Function::by_name(&name) else {
            return Err(self.error_at(offset, format!("unknown function `{name}`")));
        };
        let mut args = Vec::new();
        let mut regex = None;
        loop {
            self.skip_newlines();
            if self.eat(&Token::RParen) {
                break;
            }
            let arg_offset = self.here();
            match self.peek().cloned() {
                Some(Token::Regex(pattern)) if function.regex_argument() == Some(args.len()) => {
                    self.pos += 1;
                    regex = Some(Regex::new(&pattern).map_err(|e| {
                        self.error_at(
                            arg_offset,
                            format!("invalid regex: {}", regex_error_text(&e)),
                        )
                    })?);
                    args.push(Node {
                        expr: Expr::Literal(Value::Null),
                        offset: arg_offset,
                    });
                }
                _ => args.push(self.expr()?),
            }
            self.skip_newlines();
            if self.eat(&Token::Comma) {
                continue;
            }
            self.expect(&Token::RParen, "`,` or `)`")?;
            break;
        }
        self.leave();
        let (min, max) = function.arity();
        if args.len() < min || args.len() > max {
            let wanted = match (min, max) {
                (a, b) if a == b => format!("{a}"),
                (a, b) => format!("{a} to {b}"),
            };
            let plural = if max == 1 { "" } else { "s" };
            return Err(self.error_at(
                offset,
                format!(
                    "`{name}` takes {wanted} argument{plural}, found {}",
                    args.len()
                ),
            ));
        }
        if function == Function::ParseRegex && regex.is_none() {
            return Err(self.error_at(
                args[1].offset,
                "the pattern of `parse_regex` must be a regex literal: r'(?P<name>...)'".into(),
            ));
        }
        debug_assert!(args.len() <= MAX_ARGS);
        Ok(Node {
            expr: Expr::Call(Box::new(Call {
                function,
                args: args.into_boxed_slice(),
                regex,
            })),
            offset,
        })
    }
}

enum PendingTarget {
    Field(u32),
    Variable(String),
    Discard,
}

fn binary(
    offset: usize,
    left: Node,
    right: Node,
    make: impl FnOnce(Box<Node>, Box<Node>) -> Expr,
) -> Node {
    Node {
        expr: make(Box::new(left), Box::new(right)),
        offset,
    }
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
        Expr::Call(call) => {
            if call.function.is_fallible() {
                Some((node.offset, call.function.name()))
            } else {
                call.args.iter().find_map(first_unhandled)
            }
        }
    }
}
