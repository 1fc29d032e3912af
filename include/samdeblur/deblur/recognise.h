#pragma once
// Which network a checkpoint holds, from its state-dict keys and shapes alone
// (no YAML needed): the official SAM-Deblur architectures
// (basicsr/models/archs/NAFNet_arch.py, SegNAFNet_arch.py) leave these marks:
//
//   intro.weight     (width, in, 3, 3)   in = img_channel (NAFNet), img_channel + 1
//                                        (CAT, `mask: true`), img_channel + seg_channel
//                                        (SegNAFNet)
//   ending.weight    (img_channel, width, 3, 3)
//   pre_seg.weight   (seg_channel, img_channel, 3, 3)  SegNAFNet only (the MAP unit)
//   downs.<i>        one per encoder level; encoders.<i>.<j>: enc_blk_nums[i] = max j + 1
//   ups.<i>          one per decoder level; decoders.<i>.<j>: dec_blk_nums[i]
//   middle_blks.<j>  middle_blk_num = max j + 1
//
// The TLC forms (NAFNetLocal, SegNAFNetLocal) have the same weights: whether to
// use them is an inference-time choice (`tlc`); the official test configs use
// them for every network, with the default train_size [1, 3, 256, 256].
#include <string>
#include <vector>

#include "samdeblur/io/checkpoint.h"
#include "samdeblur/models/network.h"

namespace samdeblur::deblur {

struct Recognised {
  models::NetworkOptions network;  // type, width, block counts, mask, seg_channel
  std::string variant;             // "NAFNet", "CAT" or "SegNAFNet" (before the TLC choice)
  std::string describe() const;    // "SegNAFNetLocal width 32 enc [1, 1, 1, 28] ..."
};

// Recognises the network of a state dict (keys with an optional leading
// "module."). tlc selects the *Local type. Throws FileError naming `source`
// when the keys fit no known network, listing what is missing and what was
// found (tensor count and the first keys with their shapes). Keys or shapes
// that contradict the recognised network are reported when loading
// (io::load_state_dict, strict).
Recognised recognise_network(const io::StateDict& sd, const std::string& source, bool tlc = true);

// The same from a checkpoint file (io::load_state_dict_file with `read`).
Recognised recognise_checkpoint(const std::string& path, bool tlc = true,
                                const io::ReadOptions& read = {});

}  // namespace samdeblur::deblur
