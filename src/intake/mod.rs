pub mod payload;
pub mod signature;
