//! Rebuilds when a language's resource files change, or a language folder is added under
//! `locales/` (src/i18n embeds the folder; the compiler alone would not see a new file).

fn main() {
    println!("cargo:rerun-if-changed=locales");
}
