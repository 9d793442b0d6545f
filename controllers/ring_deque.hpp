// SPDX-License-Identifier: Apache-2.0
#pragma once
// A double-ended queue on one ring buffer, for the windows the filters keep per
// snapshot (push at the back, drop at the front). std::deque allocates and frees a
// node every 64 doubles pushed through it and walks its node map on every iterator
// step; this grows by doubling to the largest window it held and then allocates
// nothing. Only the part of std::deque's interface the filters use.

#include <cstddef>
#include <iterator>
#include <utility>
#include <vector>

namespace orbit {

template <class T>
class RingDeque {
 public:
  // A slot pointer, the mask and an unwrapped position: reading through it loads
  // nothing of the deque (an iterator through the deque itself cost a min_element
  // over 20 values twice std::deque's, its fields reloaded per step).
  template <bool Const>
  class Iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = std::conditional_t<Const, const T*, T*>;
    using reference = std::conditional_t<Const, const T&, T&>;

    Iterator() = default;
    Iterator(pointer slots, std::size_t mask, std::size_t position) : slots_(slots), mask_(mask), position_(position) {}

    reference operator*() const { return slots_[position_ & mask_]; }
    pointer operator->() const { return &slots_[position_ & mask_]; }
    reference operator[](difference_type d) const { return *(*this + d); }
    Iterator& operator++() {
      ++position_;
      return *this;
    }
    Iterator operator++(int) {
      Iterator old = *this;
      ++position_;
      return old;
    }
    Iterator& operator--() {
      --position_;
      return *this;
    }
    Iterator operator--(int) {
      Iterator old = *this;
      --position_;
      return old;
    }
    Iterator& operator+=(difference_type d) {
      position_ = static_cast<std::size_t>(static_cast<difference_type>(position_) + d);
      return *this;
    }
    Iterator& operator-=(difference_type d) { return *this += -d; }
    friend Iterator operator+(Iterator it, difference_type d) { return it += d; }
    friend Iterator operator+(difference_type d, Iterator it) { return it += d; }
    friend Iterator operator-(Iterator it, difference_type d) { return it -= d; }
    friend difference_type operator-(const Iterator& a, const Iterator& b) {
      return static_cast<difference_type>(a.position_) - static_cast<difference_type>(b.position_);
    }
    friend bool operator==(const Iterator& a, const Iterator& b) { return a.position_ == b.position_; }
    friend auto operator<=>(const Iterator& a, const Iterator& b) { return a.position_ <=> b.position_; }

   private:
    pointer slots_ = nullptr;
    std::size_t mask_ = 0;
    std::size_t position_ = 0;  // head + index from the front, not yet wrapped
  };
  using iterator = Iterator<false>;
  using const_iterator = Iterator<true>;
  using reverse_iterator = std::reverse_iterator<iterator>;
  using const_reverse_iterator = std::reverse_iterator<const_iterator>;

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void clear() {
    head_ = 0;
    size_ = 0;
  }

  // i from the front (0: the oldest).
  T& operator[](std::size_t i) { return slots_[(head_ + i) & mask_]; }
  const T& operator[](std::size_t i) const { return slots_[(head_ + i) & mask_]; }
  T& front() { return (*this)[0]; }
  const T& front() const { return (*this)[0]; }
  T& back() { return (*this)[size_ - 1]; }
  const T& back() const { return (*this)[size_ - 1]; }

  void push_back(T value) {
    if (size_ == slots_.size()) grow();
    slots_[(head_ + size_) & mask_] = std::move(value);
    ++size_;
  }
  template <class... Args>
  T& emplace_back(Args&&... args) {
    push_back(T(std::forward<Args>(args)...));
    return back();
  }
  void pop_front() {
    head_ = (head_ + 1) & mask_;
    --size_;
  }
  void pop_back() { --size_; }

  iterator begin() { return {slots_.data(), mask_, head_}; }
  iterator end() { return {slots_.data(), mask_, head_ + size_}; }
  const_iterator begin() const { return {slots_.data(), mask_, head_}; }
  const_iterator end() const { return {slots_.data(), mask_, head_ + size_}; }
  reverse_iterator rbegin() { return reverse_iterator(end()); }
  reverse_iterator rend() { return reverse_iterator(begin()); }
  const_reverse_iterator rbegin() const { return const_reverse_iterator(end()); }
  const_reverse_iterator rend() const { return const_reverse_iterator(begin()); }

 private:
  void grow() {
    // Re-packed oldest first into twice the room (a power of two: the index wraps by a mask).
    std::vector<T> slots(slots_.empty() ? 8 : 2 * slots_.size());
    for (std::size_t i = 0; i < size_; ++i) slots[i] = std::move((*this)[i]);
    slots_ = std::move(slots);
    head_ = 0;
    mask_ = slots_.size() - 1;
  }

  std::vector<T> slots_;
  std::size_t head_ = 0;  // the oldest value's slot
  std::size_t size_ = 0;
  std::size_t mask_ = 0;
};

}  // namespace orbit
