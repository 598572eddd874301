pub fn main(_args: &[std::ffi::OsString]) -> i32 { 0 }
