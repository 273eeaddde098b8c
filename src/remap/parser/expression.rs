//! Expressions: operators by precedence, literals, fields, variables and calls (the
//! `expr` … `primary` rules of the grammar in `parser.rs`).

use compact_str::CompactString;
use regex::bytes::Regex;

use super::{Parser, Result};
use crate::condition::regex_error_text;
use crate::event::{fields, Value};
use crate::remap::functions::enrichment::TABLE_RECORD;
use crate::remap::functions::{Function, MAX_ARGS};
use crate::remap::lexer::{Spanned, Token};
use crate::remap::tree::{ArithmeticOp, Call, Expr, Node};

impl Parser<'_> {
    // === expressions ===

    pub(super) fn expr(&mut self) -> Result<Node> {
        self.enter()?;
        let node = self.chain(Self::or, |t| {
            (t == &Token::Coalesce).then_some(Expr::Coalesce)
        })?;
        self.leave();
        Ok(node)
    }

    fn or(&mut self) -> Result<Node> {
        self.chain(Self::and, |t| (t == &Token::Or).then_some(Expr::Or))
    }

    fn and(&mut self) -> Result<Node> {
        self.chain(Self::comparison, |t| {
            (t == &Token::And).then_some(Expr::And)
        })
    }

    /// One precedence level of left-associative operators: operands read by `operand`,
    /// joined while `operator` knows the next token, each join counted as a level of
    /// nesting until the chain ends.
    fn chain<Make: FnOnce(Box<Node>, Box<Node>) -> Expr>(
        &mut self,
        operand: fn(&mut Self) -> Result<Node>,
        operator: impl Fn(&Token) -> Option<Make>,
    ) -> Result<Node> {
        let mut left = operand(self)?;
        let mut operands = 0;
        while let Some(make) = self.peek().and_then(&operator) {
            let offset = self.here();
            self.pos += 1;
            self.enter_operand(&mut operands)?;
            self.skip_newlines();
            let right = operand(self)?;
            left = binary(offset, left, right, make);
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
        self.chain(Self::product, |t| {
            let op = match t {
                Token::Plus => ArithmeticOp::Add,
                Token::Minus => ArithmeticOp::Subtract,
                _ => return None,
            };
            Some(move |l, r| Expr::Arithmetic(op, l, r))
        })
    }

    fn product(&mut self) -> Result<Node> {
        self.chain(Self::unary, |t| {
            let op = match t {
                Token::Star => ArithmeticOp::Multiply,
                Token::Slash => ArithmeticOp::Divide,
                Token::Percent => ArithmeticOp::Remainder,
                _ => return None,
            };
            Some(move |l, r| Expr::Arithmetic(op, l, r))
        })
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
            let hint = if super::is_function(&name) {
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
        if name == TABLE_RECORD {
            let node = self.table_record(offset)?;
            self.leave();
            return Ok(node);
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
