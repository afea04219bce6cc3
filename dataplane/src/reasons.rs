//! Counted reasons (why a frame was dropped, why a request got no reply): each an enum built
//! from one table of variants and their names, so a new reason is one line and shows up in
//! every counter array and in `tandemctl status` by itself.

/// An enum of reasons from a table of `Variant => "kebab-name",` rows, with `ALL`, `COUNT`,
/// `index`, `from_index`, `name` and `Display`. The names are an operator-visible API
/// (`tandemctl status`): keep them stable.
macro_rules! reasons {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v,)* }

        impl $name {
            /// Every reason, in index order.
            pub const ALL: &'static [$name] = &[$(Self::$v,)*];

            /// How many reasons there are.
            pub const COUNT: usize = Self::ALL.len();

            /// Position in [`Self::ALL`], `0..COUNT`, for counter arrays.
            pub const fn index(self) -> usize {
                self as usize
            }

            /// The reason with index `i`, if there is one.
            pub const fn from_index(i: usize) -> Option<Self> {
                if i < Self::COUNT {
                    Some(Self::ALL[i])
                } else {
                    None
                }
            }

            /// Stable kebab-case name for counters and `tandemctl status`.
            pub const fn name(self) -> &'static str {
                match self { $(Self::$v => $s,)* }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

pub(crate) use reasons;
