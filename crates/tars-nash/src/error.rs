//! The crate's one error type: what was wrong with the input, and what would be valid.
//!
//! Validation happens when a [`Matrix`](crate::Matrix), [`Bimatrix`](crate::Bimatrix) or
//! [`NormalFormGame`](crate::NormalFormGame) is built, so the solvers only fail for reasons
//! that depend on the game itself (too large to enumerate, not zero-sum) or on a strategy
//! profile passed in by the caller.

/// Everything that can go wrong in `tars-nash`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A payoff matrix has no rows or no columns.
    #[error("payoff matrix {name} is empty; give at least one row with at least one entry")]
    EmptyMatrix {
        /// The matrix's name, such as `A`, `B` or `scores`.
        name: &'static str,
    },
    /// The rows of a payoff matrix differ in length.
    #[error(
        "payoff matrix {name} is ragged: row {row_idx} has {len} entries but row 0 has {expected}; every row needs the same number of entries"
    )]
    RaggedMatrix {
        /// The matrix's name.
        name: &'static str,
        /// The first row whose length differs from row 0.
        row_idx: usize,
        /// That row's length.
        len: usize,
        /// The length of row 0.
        expected: usize,
    },
    /// A payoff is NaN, infinite, or so large that the solvers' sums and products would
    /// overflow (more than [`crate::MAX_PAYOFF`] in magnitude).
    #[error(
        "payoff {name}[{row_idx}][{col_idx}] is {value}; payoffs must be finite numbers of magnitude at most 1e12 (scale the game: its equilibria do not change)"
    )]
    NonFinitePayoff {
        /// The matrix's name.
        name: &'static str,
        /// Row of the bad entry.
        row_idx: usize,
        /// Column of the bad entry.
        col_idx: usize,
        /// The bad value.
        value: f64,
    },
    /// `A` and `B` of a bimatrix game have different shapes.
    #[error(
        "payoff matrices disagree in shape: A is {a_rows}x{a_cols} but B is {b_rows}x{b_cols}; B must have the shape of A"
    )]
    ShapeMismatch {
        /// Rows of `A`.
        a_rows: usize,
        /// Columns of `A`.
        a_cols: usize,
        /// Rows of `B`.
        b_rows: usize,
        /// Columns of `B`.
        b_cols: usize,
    },
    /// Exhaustive enumeration would solve too many linear systems.
    #[error(
        "a {n_rows}x{n_cols} game is too large for exhaustive enumeration: it needs {n_bases} basis solves, more than the limit of {limit}; find one equilibrium with Lemke-Howson instead"
    )]
    TooLargeForEnumeration {
        /// Rows of the game.
        n_rows: usize,
        /// Columns of the game.
        n_cols: usize,
        /// Linear systems the enumeration would solve (C(m+n, m) per player).
        n_bases: u128,
        /// The largest number accepted.
        limit: u128,
    },
    /// Exhaustive enumeration tracks labels in 128 bits, one per action of either player.
    #[error(
        "a {n_rows}x{n_cols} game has {} actions in all, more than the 128 exhaustive enumeration handles; find one equilibrium with Lemke-Howson instead",
        n_rows + n_cols
    )]
    TooManyActions {
        /// Rows of the game.
        n_rows: usize,
        /// Columns of the game.
        n_cols: usize,
    },
    /// The zero-sum solver was given a game with `B != -A`.
    #[error(
        "game is not zero-sum: A[{row_idx}][{col_idx}] + B[{row_idx}][{col_idx}] = {sum}; the zero-sum solver needs B = -A (or B omitted)"
    )]
    NotZeroSum {
        /// Row of the first entry where `A + B != 0`.
        row_idx: usize,
        /// Column of that entry.
        col_idx: usize,
        /// `A + B` at that entry.
        sum: f64,
    },
    /// A mixed strategy passed in is not a probability distribution over the player's actions.
    #[error("strategy of player {player_idx} is invalid: {reason}")]
    InvalidStrategy {
        /// The player (0 is the row player).
        player_idx: usize,
        /// What is wrong, and what would be valid.
        reason: String,
    },
    /// The shape or payoffs of an N-player game are inconsistent.
    #[error("invalid normal-form game: {reason}")]
    InvalidGame {
        /// What is wrong, and what would be valid.
        reason: String,
    },
    /// A numeric setting is outside its valid range.
    #[error("{name} = {value} is out of range; expected {expected}")]
    OutOfRange {
        /// The setting's name.
        name: &'static str,
        /// The value given.
        value: f64,
        /// The valid range, in words.
        expected: &'static str,
    },
    /// Lemke-Howson found no verified equilibrium from any initial label within the pivot limit.
    #[error(
        "lemke-howson found no verified equilibrium from any of the {n_labels} initial labels within {max_pivots} pivots each; raise the pivot limit or use exhaustive enumeration"
    )]
    LemkeHowsonFailed {
        /// Initial labels tried.
        n_labels: usize,
        /// Pivot limit per path.
        max_pivots: usize,
    },
    /// The linear-programming solver failed (numerical trouble on an extreme game).
    #[error("linear program failed: {reason}; rescale the payoffs to a moderate range")]
    LinearProgram {
        /// The LP solver's message.
        reason: String,
    },
}
