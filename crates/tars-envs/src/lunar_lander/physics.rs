//! The Box2D 2.3.1 world of LunarLander: terrain, lander, legs, leg joints and the contact
//! detector, built exactly as gymnasium 1.x `gymnasium/envs/box2d/lunar_lander.py`
//! (`reset`, `ContactDetector`) builds them through pybox2d.
//!
//! The physics is the real Box2D C++ engine, compiled from the sources bundled in the
//! `wrapped2d` crate. This file is the only one that touches it; `mod.rs` sees plain `f32`
//! body state and impulse calls. Body and fixture creation order, shapes, densities,
//! frictions, collision filters and joint definitions follow pybox2d's defaults, because
//! Box2D's results depend on all of them (including the order bodies enter the world).

use std::sync::Once;

use wrapped2d::b2;
use wrapped2d::dynamics::world::callbacks::ContactAccess;
use wrapped2d::user_data::{UserData, UserDataTypes};

/// Pixels per metre in gymnasium's world coordinates.
pub(super) const SCALE: f64 = 30.0;
pub(super) const VIEWPORT_W: f64 = 600.0;
pub(super) const VIEWPORT_H: f64 = 400.0;
/// Frames per second; one step advances the world by `1 / FPS` seconds.
pub(super) const FPS: f64 = 50.0;
/// Terrain is made of `CHUNKS - 1` edges between `CHUNKS` smoothed heights.
pub(super) const CHUNKS: usize = 11;
pub(super) const LEG_DOWN: f64 = 18.0;

const LANDER_POLY: [(f64, f64); 6] = [
    (-14.0, 17.0),
    (-17.0, 0.0),
    (-17.0, -10.0),
    (17.0, -10.0),
    (17.0, 0.0),
    (14.0, 17.0),
];
const LEG_AWAY: f64 = 20.0;
const LEG_W: f64 = 2.0;
const LEG_H: f64 = 8.0;
const LEG_SPRING_TORQUE: f32 = 40.0;
/// gymnasium's `world.Step(1.0 / FPS, 6 * 30, 2 * 30)`.
const VELOCITY_ITERATIONS: i32 = 6 * 30;
const POSITION_ITERATIONS: i32 = 2 * 30;

/// The helipad's height in metres: `H / 4`.
pub(super) const HELIPAD_Y: f64 = VIEWPORT_H / SCALE / 4.0;

/// What each body is, and whether it touches the ground (for the lander: has ever touched it,
/// which is gymnasium's `game_over`).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct BodyFlags {
    kind: BodyKind,
    contact: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    #[default]
    Ground,
    Lander,
    Leg,
}

pub(super) struct LanderData;

impl UserDataTypes for LanderData {
    type BodyData = BodyFlags;
    type JointData = ();
    type FixtureData = ();
}

/// The lander body's state as Box2D holds it (single precision).
#[derive(Debug, Clone, Copy)]
pub(super) struct LanderState {
    pub x: f32,
    pub y: f32,
    pub vx: f32,
    pub vy: f32,
    pub angle: f32,
    pub angular_velocity: f32,
    pub awake: bool,
}

/// One episode's Box2D world. A new one is built on every reset, as gymnasium does (its
/// workaround for Farama-Foundation/Gymnasium#728).
pub(super) struct LanderWorld {
    world: b2::World<LanderData>,
    lander: b2::BodyHandle,
    legs: [b2::BodyHandle; 2],
}

// SAFETY: a `LanderWorld` exclusively owns its C++ `b2World` and every object in it; nothing
// else points into it, so moving it to another thread is sound. The only state Box2D 2.3.1
// shares between worlds is (a) two lazily built lookup tables (`b2BlockAllocator`'s size map
// and `b2Contact`'s registers), which `init_box2d_globals` fills under a `Once` before any
// world exists, and (b) profiling counters (`b2_gjkCalls`, `b2_toiCalls`, ...) that are
// incremented but never read by the solver, so worlds on different threads never observe each
// other.
unsafe impl Send for LanderWorld {}

impl LanderWorld {
    /// Builds the world of gymnasium's `reset` from the 12 raw terrain heights it draws.
    pub(super) fn new(gravity: f64, terrain_heights: &[f64; CHUNKS + 1]) -> LanderWorld {
        init_box2d_globals();
        let mut world = b2::World::<LanderData>::new(&vec2(0.0, gravity));
        world.set_contact_listener(Box::new(ContactDetector));

        let w = VIEWPORT_W / SCALE;
        let mut height = *terrain_heights;
        // The five chunks around the centre are the helipad.
        height[CHUNKS / 2 - 2..=CHUNKS / 2 + 2].fill(HELIPAD_Y);
        // `height[i - 1]` at i = 0 is Python's `height[-1]`, the last entry.
        let smooth_y: Vec<f64> = (0..CHUNKS)
            .map(|i| 0.33 * (height[(i + CHUNKS) % (CHUNKS + 1)] + height[i] + height[i + 1]))
            .collect();
        let chunk_x: Vec<f64> = (0..CHUNKS)
            .map(|i| w / (CHUNKS - 1) as f64 * i as f64)
            .collect();

        // The moon: `CreateStaticBody(shapes=edgeShape(...))` gets a default fixture def.
        let moon = world.create_body(&b2::BodyDef::new());
        {
            let mut moon = world.body_mut(moon);
            let bottom = b2::EdgeShape::new_with(&vec2(0.0, 0.0), &vec2(w, 0.0));
            moon.create_fixture(&bottom, &mut b2::FixtureDef::new());
            for i in 0..CHUNKS - 1 {
                let edge = b2::EdgeShape::new_with(
                    &vec2(chunk_x[i], smooth_y[i]),
                    &vec2(chunk_x[i + 1], smooth_y[i + 1]),
                );
                let mut def = b2::FixtureDef {
                    density: 0.0,
                    friction: 0.1,
                    ..b2::FixtureDef::new()
                };
                moon.create_fixture(&edge, &mut def);
            }
        }

        let initial_x = VIEWPORT_W / SCALE / 2.0;
        let initial_y = VIEWPORT_H / SCALE;
        let lander = world.create_body_with(
            &b2::BodyDef {
                body_type: b2::BodyType::Dynamic,
                position: vec2(initial_x, initial_y),
                angle: 0.0,
                ..b2::BodyDef::new()
            },
            BodyFlags {
                kind: BodyKind::Lander,
                contact: false,
            },
        );
        {
            let vertices: Vec<b2::Vec2> = LANDER_POLY
                .iter()
                .map(|&(x, y)| vec2(x / SCALE, y / SCALE))
                .collect();
            let shape = b2::PolygonShape::new_with(&vertices);
            let mut def = b2::FixtureDef {
                density: 5.0,
                friction: 0.1,
                restitution: 0.0,
                filter: b2::Filter {
                    category_bits: 0x0010,
                    mask_bits: 0x001,
                    group_index: 0,
                },
                ..b2::FixtureDef::new()
            };
            world.body_mut(lander).create_fixture(&shape, &mut def);
        }

        let mut legs = [lander; 2];
        for (leg_idx, side) in [-1.0f64, 1.0].into_iter().enumerate() {
            let leg = world.create_body_with(
                &b2::BodyDef {
                    body_type: b2::BodyType::Dynamic,
                    position: vec2(initial_x - side * LEG_AWAY / SCALE, initial_y),
                    angle: (side * 0.05) as f32,
                    ..b2::BodyDef::new()
                },
                BodyFlags {
                    kind: BodyKind::Leg,
                    contact: false,
                },
            );
            {
                let shape =
                    b2::PolygonShape::new_box((LEG_W / SCALE) as f32, (LEG_H / SCALE) as f32);
                let mut def = b2::FixtureDef {
                    density: 1.0,
                    restitution: 0.0,
                    filter: b2::Filter {
                        category_bits: 0x0020,
                        mask_bits: 0x001,
                        group_index: 0,
                    },
                    ..b2::FixtureDef::new()
                };
                world.body_mut(leg).create_fixture(&shape, &mut def);
            }
            // pybox2d's `revoluteJointDef` sets `referenceAngle = bodyB.angle - bodyA.angle`.
            let reference_angle = world.body(leg).angle() - world.body(lander).angle();
            let (lower_angle, upper_angle) = if side < 0.0 {
                (0.9 - 0.5, 0.9)
            } else {
                (-0.9, -0.9 + 0.5)
            };
            let joint = b2::RevoluteJointDef {
                local_anchor_a: vec2(0.0, 0.0),
                local_anchor_b: vec2(side * LEG_AWAY / SCALE, LEG_DOWN / SCALE),
                reference_angle,
                enable_motor: true,
                enable_limit: true,
                max_motor_torque: LEG_SPRING_TORQUE,
                motor_speed: (0.3 * side) as f32,
                lower_angle: lower_angle as f32,
                upper_angle: upper_angle as f32,
                ..b2::RevoluteJointDef::new(lander, leg)
            };
            world.create_joint(&joint);
            legs[leg_idx] = leg;
        }

        LanderWorld {
            world,
            lander,
            legs,
        }
    }

    pub(super) fn apply_force_to_center(&mut self, fx: f64, fy: f64) {
        self.world
            .body_mut(self.lander)
            .apply_force_to_center(&vec2(fx, fy), true);
    }

    pub(super) fn apply_torque(&mut self, torque: f64) {
        self.world
            .body_mut(self.lander)
            .apply_torque(torque as f32, true);
    }

    pub(super) fn apply_linear_impulse(&mut self, impulse: (f64, f64), point: (f64, f64)) {
        self.world.body_mut(self.lander).apply_linear_impulse(
            &vec2(impulse.0, impulse.1),
            &vec2(point.0, point.1),
            true,
        );
    }

    /// Advances the world by `1 / FPS` seconds with gymnasium's iteration counts.
    pub(super) fn step(&mut self) {
        self.world
            .step((1.0 / FPS) as f32, VELOCITY_ITERATIONS, POSITION_ITERATIONS);
    }

    pub(super) fn lander(&self) -> LanderState {
        let body = self.world.body(self.lander);
        let (position, velocity) = (*body.position(), *body.linear_velocity());
        LanderState {
            x: position.x,
            y: position.y,
            vx: velocity.x,
            vy: velocity.y,
            angle: body.angle(),
            angular_velocity: body.angular_velocity(),
            awake: body.is_awake(),
        }
    }

    /// gymnasium's `legs[i].ground_contact`.
    pub(super) fn leg_contacts(&self) -> [bool; 2] {
        self.legs
            .map(|leg| self.world.body(leg).user_data().contact)
    }

    /// gymnasium's `game_over`: the lander's hull has touched the ground this episode.
    pub(super) fn hull_touched_ground(&self) -> bool {
        self.world.body(self.lander).user_data().contact
    }
}

/// gymnasium's `ContactDetector`: a hull contact ends the game, leg contacts come and go.
struct ContactDetector;

impl b2::ContactListener<LanderData> for ContactDetector {
    fn begin_contact(&mut self, mut contact: ContactAccess<'_, LanderData>) {
        for flags in [
            contact.body_a.user_data_mut(),
            contact.body_b.user_data_mut(),
        ] {
            if flags.kind != BodyKind::Ground {
                flags.contact = true;
            }
        }
    }

    fn end_contact(&mut self, mut contact: ContactAccess<'_, LanderData>) {
        for flags in [
            contact.body_a.user_data_mut(),
            contact.body_b.user_data_mut(),
        ] {
            if flags.kind == BodyKind::Leg {
                flags.contact = false;
            }
        }
    }
}

/// Converts gymnasium's double-precision coordinates the way pybox2d's SWIG layer does.
fn vec2(x: f64, y: f64) -> b2::Vec2 {
    b2::Vec2 {
        x: x as f32,
        y: y as f32,
    }
}

/// Fills Box2D's lazily built global tables once, before any world can be used on another
/// thread: the first `b2World` builds the block allocator's size map, the first contact
/// builds the contact-type registers.
fn init_box2d_globals() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let mut world = b2::World::<LanderData>::new(&vec2(0.0, -10.0));
        let ground = world.create_body(&b2::BodyDef::new());
        let edge = b2::EdgeShape::new_with(&vec2(-1.0, 0.0), &vec2(1.0, 0.0));
        world
            .body_mut(ground)
            .create_fixture(&edge, &mut b2::FixtureDef::new());
        let dynamic = b2::BodyDef {
            body_type: b2::BodyType::Dynamic,
            position: vec2(0.0, 0.05),
            ..b2::BodyDef::new()
        };
        let block = world.create_body(&dynamic);
        let shape = b2::PolygonShape::new_box(0.1, 0.1);
        world
            .body_mut(block)
            .create_fixture(&shape, &mut b2::FixtureDef::new());
        world.step((1.0 / FPS) as f32, 1, 1);
        debug_assert!(
            world.contact_count() > 0,
            "the warm-up world must create a contact"
        );
    });
}
