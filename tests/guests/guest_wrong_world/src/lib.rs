//! A valid component of some other world: hsm-host must refuse it by name.

wit_bindgen::generate!({
    inline: "
        package other:plugin@1.0.0;
        world plugin {
            export run: func(input: string) -> string;
        }
    ",
});

struct Plugin;

impl Guest for Plugin {
    fn run(input: String) -> String {
        input
    }
}

export!(Plugin);
